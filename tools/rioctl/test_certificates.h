// Throwaway PEM certificates and keys for rioctl's unit tests (made with
// the openssl command; nothing trusts them):
//
//   kCertA   CN=rioctl-unit-test,O=Rio, self-signed with kKeyA, valid until
//            2126-11-10T22:32:27Z
//   kCertB   CN=rioctl-other, self-signed with kKeyB, valid until
//            2027-01-03T22:32:27Z
#ifndef RIO_TOOLS_RIOCTL_TEST_CERTIFICATES_H_
#define RIO_TOOLS_RIOCTL_TEST_CERTIFICATES_H_

namespace rio::rioctl::testing {

inline constexpr char kCertA[] = R"pem(-----BEGIN CERTIFICATE-----
MIIBqDCCAU+gAwIBAgIUcurkuYLwGNo3vqmNp7pjQagESOMwCgYIKoZIzj0EAwIw
KTEMMAoGA1UECgwDUmlvMRkwFwYDVQQDDBByaW9jdGwtdW5pdC10ZXN0MCAXDTI2
MTIwNDIyMzIyN1oYDzIxMjYxMTEwMjIzMjI3WjApMQwwCgYDVQQKDANSaW8xGTAX
BgNVBAMMEHJpb2N0bC11bml0LXRlc3QwWTATBgcqhkjOPQIBBggqhkjOPQMBBwNC
AAQl2QhNRfjijNicMjFfd/Nx73ye92WlVBaRCQxEXEuDneD9kEon6r9xmmwLwHTL
j/zERu6vl39yFJJ/N1HYMoVCo1MwUTAdBgNVHQ4EFgQUcsOE+wfCyiGI7d/J0rge
h93tMmswHwYDVR0jBBgwFoAUcsOE+wfCyiGI7d/J0rgeh93tMmswDwYDVR0TAQH/
BAUwAwEB/zAKBggqhkjOPQQDAgNHADBEAiBFQJdfBNvKdhQ6gG0Ua1jfFHPF1AuU
qwR/b1jyiizbGwIgFdN5Ain3XwEknJ9WZocTFbzITaEGpoFm69a53FCd2aM=
-----END CERTIFICATE-----
)pem";

inline constexpr char kKeyA[] = R"pem(-----BEGIN PRIVATE KEY-----
MIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQgojamcPEl53BFgygT
PaVfqTeRLpxLErzAL9wjyxwhF6mhRANCAAQl2QhNRfjijNicMjFfd/Nx73ye92Wl
VBaRCQxEXEuDneD9kEon6r9xmmwLwHTLj/zERu6vl39yFJJ/N1HYMoVC
-----END PRIVATE KEY-----
)pem";

inline constexpr char kCertB[] = R"pem(-----BEGIN CERTIFICATE-----
MIIBgzCCASmgAwIBAgIULrgTh/qVr+cG903OX3rgKs+3bfAwCgYIKoZIzj0EAwIw
FzEVMBMGA1UEAwwMcmlvY3RsLW90aGVyMB4XDTI2MTIwNDIyMzIyN1oXDTI3MDEw
MzIyMzIyN1owFzEVMBMGA1UEAwwMcmlvY3RsLW90aGVyMFkwEwYHKoZIzj0CAQYI
KoZIzj0DAQcDQgAEkh9Bl/f+5tjVUXcizgw9atE1rCArFGQLGDlkyuJ3IPisWxZF
i405qmPJZImSRLYBw6XZKFZWdENbiP4xqB0+NaNTMFEwHQYDVR0OBBYEFGsqZIkq
tDs4R72mdVrWsJUOkY15MB8GA1UdIwQYMBaAFGsqZIkqtDs4R72mdVrWsJUOkY15
MA8GA1UdEwEB/wQFMAMBAf8wCgYIKoZIzj0EAwIDSAAwRQIhALLhsMAUMp2Y1ZlA
8bZ3jE7L7OqYPRUdp4RJMYcZ5PHtAiB39GfhZcX+sUKD6JNG375Vwk4kcM1dUfUM
ST96JfDUZQ==
-----END CERTIFICATE-----
)pem";

inline constexpr char kKeyB[] = R"pem(-----BEGIN PRIVATE KEY-----
MIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQglWQB/xx7Rk24FEuq
fUU+b4POXTc95K+bgUJPEI8va56hRANCAASSH0GX9/7m2NVRdyLODD1q0TWsICsU
ZAsYOWTK4ncg+KxbFkWLjTmqY8lkiZJEtgHDpdkoVlZ0Q1uI/jGoHT41
-----END PRIVATE KEY-----
)pem";

}  // namespace rio::rioctl::testing

#endif  // RIO_TOOLS_RIOCTL_TEST_CERTIFICATES_H_
