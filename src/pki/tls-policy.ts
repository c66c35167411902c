/**
 * The TLS versions and cipher suites of every listener a stranger can reach (the gateway's client
 * and tunnel listeners), of the tunnel's client side (the connection point's tls.connect) and of
 * the management point's and software update point's HTTPS servers. TLS 1.3 suites are all AEAD with forward
 * secrecy; for TLS 1.2 only ECDHE key exchange with AES-GCM or ChaCha20-Poly1305 is offered:
 * no static-RSA key exchange (no forward secrecy) and no CBC suites (padding oracles, SHA-1 MACs).
 */
export const TLS12_CIPHERS = [
  "ECDHE-ECDSA-AES128-GCM-SHA256",
  "ECDHE-RSA-AES128-GCM-SHA256",
  "ECDHE-ECDSA-AES256-GCM-SHA384",
  "ECDHE-RSA-AES256-GCM-SHA384",
  "ECDHE-ECDSA-CHACHA20-POLY1305",
  "ECDHE-RSA-CHACHA20-POLY1305",
] as const;

export const TLS13_CIPHERS = ["TLS_AES_128_GCM_SHA256", "TLS_AES_256_GCM_SHA384", "TLS_CHACHA20_POLY1305_SHA256"] as const;

/** Options for `tls.createServer`, `https.createServer`, `http2.createSecureServer` and `tls.connect`. */
export const TLS_POLICY = {
  minVersion: "TLSv1.2",
  ciphers: [...TLS13_CIPHERS, ...TLS12_CIPHERS].join(":"),
  // The server's order: a client that lists a weaker suite first still gets the strongest shared one.
  honorCipherOrder: true,
} as const;
