#!/bin/sh
# Makes throwaway certificates for TLS tests with the openssl command, in DIR
# (created if missing). Every key is an unencrypted P-256 key; every
# certificate is valid from now for two days.
#
#   ca.pem ca.key                the test CA ("Rio Test CA")
#   server.pem server.key        CN=localhost, serial 0x1001, SAN localhost and
#                                127.0.0.1 and ::1, signed by the test CA
#   server2.pem server2.key      CN=rio-rotated, serial 0x1002, the same names:
#                                what a certificate rotation installs
#   client.pem client.key        CN=rio-test-client, serial 0x2001, client
#                                authentication, signed by the test CA
#   other-ca.pem other-ca.key    another CA ("Rio Other CA") that nothing trusts
#   other-client.pem other-client.key  a client certificate of the other CA
#   wrong-name.pem wrong-name.key  CN=elsewhere.invalid, serial 0x1003, SAN
#                                elsewhere.invalid only, signed by the test CA
#
# Usage: make_test_certs.sh DIR
set -eu
dir="$1"
mkdir -p "$dir"
cd "$dir"

key() { openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$1" 2>/dev/null; }

ca() { # NAME CN
  key "$1.key"
  openssl req -x509 -new -key "$1.key" -out "$1.pem" -subj "/CN=$2" -days 2 -sha256 \
    -addext "basicConstraints=critical,CA:TRUE" \
    -addext "keyUsage=critical,keyCertSign,cRLSign" 2>/dev/null
}

leaf() { # NAME CN SERIAL CA EXTENSIONS
  key "$1.key"
  openssl req -new -key "$1.key" -out "$1.csr" -subj "/CN=$2" 2>/dev/null
  printf '%b' "$5" >"$1.ext"
  openssl x509 -req -in "$1.csr" -CA "$4.pem" -CAkey "$4.key" -set_serial "$3" -days 2 -sha256 \
    -extfile "$1.ext" -out "$1.pem" 2>/dev/null
  rm -f "$1.csr" "$1.ext"
}

server_ext='basicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature\nextendedKeyUsage=serverAuth\nsubjectAltName=DNS:localhost,IP:127.0.0.1,IP:::1\n'
client_ext='basicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature\nextendedKeyUsage=clientAuth\n'

ca ca "Rio Test CA"
ca other-ca "Rio Other CA"
leaf server localhost 0x1001 ca "$server_ext"
leaf server2 rio-rotated 0x1002 ca "$server_ext"
leaf wrong-name elsewhere.invalid 0x1003 ca \
  'basicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature\nextendedKeyUsage=serverAuth\nsubjectAltName=DNS:elsewhere.invalid\n'
leaf client rio-test-client 0x2001 ca "$client_ext"
leaf other-client rio-other-client 0x2002 other-ca "$client_ext"
