// Small HTTP helpers: bounded reads of Gatehouse's JSON documents.

/** MAX_DOCUMENT_BYTES bounds the discovery document, the JWKS and an introspection answer. */
export const MAX_DOCUMENT_BYTES = 1 << 20;

/**
 * readBounded reads a fetch Response body, failing when it is larger than
 * max bytes (without reading more than that).
 */
export async function readBounded(resp, max = MAX_DOCUMENT_BYTES) {
  const len = Number(resp.headers.get("content-length"));
  if (Number.isFinite(len) && len > max) {
    await resp.body?.cancel().catch(() => {});
    throw new Error(`larger than ${max} bytes`);
  }
  if (!resp.body) return "";
  const reader = resp.body.getReader();
  const chunks = [];
  let total = 0;
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    total += value.byteLength;
    if (total > max) {
      await reader.cancel().catch(() => {});
      throw new Error(`larger than ${max} bytes`);
    }
    chunks.push(value);
  }
  return Buffer.concat(chunks.map((c) => Buffer.from(c.buffer, c.byteOffset, c.byteLength))).toString("utf8");
}

/**
 * getJSON GETs url and returns {json, headers}; it fails on a status other
 * than 200, a body larger than MAX_DOCUMENT_BYTES or one that is not JSON.
 * Its errors name the URL, never a credential.
 */
export async function getJSON(fetchFn, url, timeoutMs) {
  let resp;
  try {
    resp = await fetchFn(url, { headers: { accept: "application/json" }, signal: AbortSignal.timeout(timeoutMs) });
  } catch (err) {
    throw new Error(`GET ${url}: ${err?.name === "TimeoutError" ? "timed out" : err?.message || "failed"}`);
  }
  if (resp.status !== 200) {
    await resp.body?.cancel().catch(() => {});
    throw new Error(`GET ${url}: ${resp.status} ${resp.statusText || ""}`.trim());
  }
  let text;
  try {
    text = await readBounded(resp);
  } catch (err) {
    throw new Error(`GET ${url}: ${err.message}`);
  }
  try {
    return { json: JSON.parse(text), headers: resp.headers };
  } catch {
    throw new Error(`GET ${url}: not JSON`);
  }
}
