# shellcheck shell=bash
# Throwaway PKI for the TLS servers: a CA, a server certificate for 127.0.0.1 / ::1 / localhost,
# and a client certificate for the mutual-TLS registry. EC P-256 keys: fast to make, accepted by
# Go (distribution), OpenSSL (nginx, curl, git) and Node alike.
make_certs() {
  local d=$1
  rm -rf "$d"
  mkdir -p "$d/certs.d" "$d/mtls.d"
  (
    cd "$d"
    openssl req -x509 -new -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -sha256 -days 30 \
      -keyout ca.key -out ca.crt -subj "/CN=airgap throwaway test CA" \
      -addext "basicConstraints=critical,CA:TRUE" \
      -addext "keyUsage=critical,keyCertSign,cRLSign" 2>/dev/null
    leaf() { # NAME CN EXTFILE-CONTENT
      openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -sha256 \
        -keyout "$1.key" -out "$1.csr" -subj "/CN=$2" 2>/dev/null
      printf '%s\n' "$3" >"$1.ext"
      openssl x509 -req -in "$1.csr" -CA ca.crt -CAkey ca.key -CAcreateserial -days 30 -sha256 \
        -extfile "$1.ext" -out "$1.crt" 2>/dev/null
      rm -f "$1.csr" "$1.ext"
    }
    leaf server localhost "basicConstraints=CA:FALSE
keyUsage=critical,digitalSignature,keyEncipherment
extendedKeyUsage=serverAuth
subjectAltName=IP:127.0.0.1,IP:::1,DNS:localhost"
    leaf client airgap-test-client "basicConstraints=CA:FALSE
keyUsage=critical,digitalSignature
extendedKeyUsage=clientAuth"
    rm -f ca.srl
    chmod 600 ./*.key
    openssl verify -CAfile ca.crt server.crt client.crt >/dev/null
    # System roots plus the test CA: for tools whose CA variables this machine already sets globally.
    cat /etc/ssl/certs/ca-certificates.crt ca.crt >bundle.crt 2>/dev/null || cp ca.crt bundle.crt
    # Folders in the containers-image / docker certs.d layout (skopeo --cert-dir).
    cp ca.crt certs.d/ca.crt
    cp ca.crt mtls.d/ca.crt
    cp client.crt mtls.d/client.cert
    cp client.key mtls.d/client.key
  )
}
