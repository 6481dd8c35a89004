package providers

// Attribute names each field of an Identity is read from, in order of
// preference; an attribute matches by Name, else by FriendlyName. A preset
// gives the names a common IdP uses out of the box; configured names
// replace a preset's for that field.
type samlAttributeNames struct {
	subject, email, name, firstName, lastName, groups, username []string
}

type samlPreset struct {
	attrs samlAttributeNames
	// nameIDFormat is the preset's default name_id_format ("" for the
	// general default).
	nameIDFormat string
}

// Claim types Microsoft's IdPs (Entra ID, ADFS) send.
const (
	msEmail       = "http://schemas.xmlsoap.org/ws/2005/05/identity/claims/emailaddress"
	msName        = "http://schemas.xmlsoap.org/ws/2005/05/identity/claims/name"
	msGivenName   = "http://schemas.xmlsoap.org/ws/2005/05/identity/claims/givenname"
	msSurname     = "http://schemas.xmlsoap.org/ws/2005/05/identity/claims/surname"
	msDisplayName = "http://schemas.microsoft.com/identity/claims/displayname"
	msObjectID    = "http://schemas.microsoft.com/identity/claims/objectidentifier"
	msGroups      = "http://schemas.microsoft.com/ws/2008/06/identity/claims/groups"
	adfsGroup     = "http://schemas.xmlsoap.org/claims/Group"
	adfsUPN       = "http://schemas.xmlsoap.org/ws/2005/05/identity/claims/upn"
)

var samlPresets = map[string]samlPreset{
	// No preset: the names most IdPs use, including the LDAP/eduPerson OIDs.
	"": {attrs: samlAttributeNames{
		email:     []string{"email", "mail", "urn:oid:0.9.2342.19200300.100.1.3", msEmail},
		name:      []string{"name", "displayName", "urn:oid:2.16.840.1.113730.3.1.241", "cn", "urn:oid:2.5.4.3"},
		firstName: []string{"firstName", "givenName", "urn:oid:2.5.4.42", msGivenName},
		lastName:  []string{"lastName", "sn", "surname", "urn:oid:2.5.4.4", msSurname},
		groups:    []string{"groups", "memberOf", msGroups},
		username:  []string{"username", "uid", "urn:oid:0.9.2342.19200300.100.1.1"},
	}},
	// Okta: attribute statements as Okta's SAML app wizard suggests them.
	"okta": {attrs: samlAttributeNames{
		email: []string{"email"}, firstName: []string{"firstName"}, lastName: []string{"lastName"},
		groups: []string{"groups"}, username: []string{"username"},
	}},
	// Entra ID: its default claims; the object id never changes, unlike
	// the NameID (the UPN by default).
	"entra": {attrs: samlAttributeNames{
		subject: []string{msObjectID}, email: []string{msEmail}, name: []string{msDisplayName},
		firstName: []string{msGivenName}, lastName: []string{msSurname}, groups: []string{msGroups},
		username: []string{msName},
	}},
	// Google Workspace: the NameID is the primary email (Google offers no
	// immutable id); attributes are the app attributes mapped in the Admin
	// console under these names.
	"google": {nameIDFormat: "emailAddress", attrs: samlAttributeNames{
		email: []string{"email"}, firstName: []string{"firstName"}, lastName: []string{"lastName"},
		groups: []string{"groups"},
	}},
	// ADFS: the claim types its claim rule templates emit.
	"adfs": {attrs: samlAttributeNames{
		email: []string{msEmail}, name: []string{msName}, firstName: []string{msGivenName},
		lastName: []string{msSurname}, groups: []string{adfsGroup, msGroups},
		username: []string{adfsUPN, msName},
	}},
}

// override replaces the preset's names with the configured ones.
func (n samlAttributeNames) override(c samlAttributeConfig) samlAttributeNames {
	set := func(dst *[]string, v string) {
		if v != "" {
			*dst = []string{v}
		}
	}
	set(&n.subject, c.Subject)
	set(&n.email, c.Email)
	set(&n.name, c.Name)
	set(&n.firstName, c.FirstName)
	set(&n.lastName, c.LastName)
	set(&n.groups, c.Groups)
	set(&n.username, c.Username)
	return n
}
