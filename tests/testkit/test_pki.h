// A throwaway certificate authority and server certificates for TLS tests,
// made with the openssl command in a private temporary directory that is
// removed on destruction. Not thread-safe.
#ifndef RIO_TESTS_TESTKIT_TEST_PKI_H_
#define RIO_TESTS_TESTKIT_TEST_PKI_H_

#include <string>

#include "absl/strings/string_view.h"

namespace rio::testkit {

class TestPki {
 public:
  TestPki();
  ~TestPki();
  TestPki(const TestPki&) = delete;
  TestPki& operator=(const TestPki&) = delete;

  // A file in the directory.
  std::string Path(absl::string_view name) const;

  // Makes the CA: ca.pem (what clients trust) and ca.key. False on failure
  // (openssl's output is in openssl.log).
  bool MakeCa();
  // Makes NAME.pem and NAME.key: a certificate for 127.0.0.1 and localhost
  // with common name NAME, signed by the CA.
  bool MakeServer(absl::string_view name);
  // Copies NAME.pem and NAME.key over server.pem and server.key, the files a
  // server under test is given.
  bool Install(absl::string_view name);

 private:
  bool Run(const std::string& command) const;

  std::string dir_;
};

}  // namespace rio::testkit

#endif  // RIO_TESTS_TESTKIT_TEST_PKI_H_
