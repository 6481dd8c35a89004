package providers

import (
	"context"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net/url"
	"os"
	"time"
)

// The SP key signs AuthnRequests and decrypts encrypted assertions; its
// certificate is published in the SP metadata. It comes from configuration
// (PEM inline or in files) or is generated on first start and kept by the
// SecretStore (encrypted at rest, shared by replicas).

// spSecretName is the SecretStore name of a generated SP key and certificate.
const spSecretName = "sp-credentials"

func loadSPCredentials(ctx context.Context, provider, entityID string, s *samlSettings, secrets SecretStore) (*rsa.PrivateKey, *x509.Certificate, error) {
	certPEM, err := inlineOrFile("sp_certificate", s.SPCertificate, s.SPCertificateFile)
	if err != nil {
		return nil, nil, err
	}
	keyPEM, err := inlineOrFile("sp_key", s.SPKey, s.SPKeyFile)
	if err != nil {
		return nil, nil, err
	}
	switch {
	case (certPEM == nil) != (keyPEM == nil):
		return nil, nil, errors.New("sp_certificate and sp_key go together: set both, or neither to have a key generated")
	case certPEM != nil:
		return parseSPCredentials(append(keyPEM, certPEM...))
	case secrets == nil:
		return nil, nil, errors.New("set sp_certificate and sp_key (no storage for a generated key)")
	}
	blob, err := secrets.LoadOrCreate(ctx, provider, spSecretName, func() ([]byte, error) {
		return generateSPCredentials(entityID)
	})
	if err != nil {
		return nil, nil, fmt.Errorf("generated SP key: %w", err)
	}
	return parseSPCredentials(blob)
}

func inlineOrFile(field, inline, file string) ([]byte, error) {
	switch {
	case inline != "" && file != "":
		return nil, fmt.Errorf("set %s or %s_file, not both", field, field)
	case inline != "":
		return []byte(inline), nil
	case file != "":
		b, err := os.ReadFile(file)
		if err != nil {
			return nil, fmt.Errorf("%s_file: %v", field, unwrapPath(err))
		}
		return b, nil
	}
	return nil, nil
}

// parseSPCredentials reads an RSA private key (PKCS#1 or PKCS#8) and a
// certificate for it from PEM blocks in any order.
func parseSPCredentials(data []byte) (*rsa.PrivateKey, *x509.Certificate, error) {
	var key *rsa.PrivateKey
	var cert *x509.Certificate
	for {
		var b *pem.Block
		b, data = pem.Decode(data)
		if b == nil {
			break
		}
		switch b.Type {
		case "CERTIFICATE":
			c, err := x509.ParseCertificate(b.Bytes)
			if err != nil {
				return nil, nil, fmt.Errorf("sp_certificate: %v", err)
			}
			cert = c
		case "RSA PRIVATE KEY":
			k, err := x509.ParsePKCS1PrivateKey(b.Bytes)
			if err != nil {
				return nil, nil, fmt.Errorf("sp_key: %v", err)
			}
			key = k
		case "PRIVATE KEY":
			k, err := x509.ParsePKCS8PrivateKey(b.Bytes)
			if err != nil {
				return nil, nil, fmt.Errorf("sp_key: %v", err)
			}
			rk, ok := k.(*rsa.PrivateKey)
			if !ok {
				return nil, nil, errors.New("sp_key must be an RSA key (it signs with RSA-SHA256 and decrypts RSA-OAEP)")
			}
			key = rk
		}
	}
	switch {
	case key == nil:
		return nil, nil, errors.New("sp_key: no RSA private key PEM block")
	case cert == nil:
		return nil, nil, errors.New("sp_certificate: no CERTIFICATE PEM block")
	case key.N.BitLen() < 2048:
		return nil, nil, errors.New("sp_key: RSA keys need at least 2048 bits")
	}
	if pub, ok := cert.PublicKey.(*rsa.PublicKey); !ok || !pub.Equal(&key.PublicKey) {
		return nil, nil, errors.New("sp_certificate is not the certificate of sp_key")
	}
	return key, cert, nil
}

// generateSPCredentials makes an RSA-2048 key and a self-signed
// certificate for it. IdPs use SP certificates only for their key, so a
// long validity spares an annual re-registration.
func generateSPCredentials(entityID string) ([]byte, error) {
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		return nil, err
	}
	cn := entityID
	if u, err := url.Parse(entityID); err == nil && u.Host != "" {
		cn = u.Host
	}
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	if err != nil {
		return nil, err
	}
	now := time.Now().UTC()
	tmpl := &x509.Certificate{
		SerialNumber: serial,
		Subject:      pkix.Name{CommonName: cn, Organization: []string{"Gatehouse SAML service provider"}},
		NotBefore:    now.Add(-time.Hour),
		NotAfter:     now.AddDate(10, 0, 0),
		KeyUsage:     x509.KeyUsageDigitalSignature | x509.KeyUsageKeyEncipherment,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return nil, err
	}
	out := pem.EncodeToMemory(&pem.Block{Type: "RSA PRIVATE KEY", Bytes: x509.MarshalPKCS1PrivateKey(key)})
	return append(out, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})...), nil
}
