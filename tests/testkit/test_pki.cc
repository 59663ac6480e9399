#include "tests/testkit/test_pki.h"

#include <stdlib.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>
#include <system_error>

#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"

namespace rio::testkit {

TestPki::TestPki() {
  char dir_template[] = "/tmp/rio-test-pki-XXXXXX";
  const char* made = mkdtemp(dir_template);
  dir_ = made != nullptr ? made : "";
}

TestPki::~TestPki() {
  std::error_code ignored;
  if (!dir_.empty()) std::filesystem::remove_all(dir_, ignored);
}

std::string TestPki::Path(absl::string_view name) const {
  return absl::StrCat(dir_, "/", name);
}

bool TestPki::MakeCa() {
  return Run(absl::StrCat(
      "openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 "
      "-nodes -days 2 -subj '/CN=Rio Test CA' -keyout ",
      Path("ca.key"), " -out ", Path("ca.pem"),
      " -addext basicConstraints=critical,CA:TRUE"
      " -addext keyUsage=critical,keyCertSign"));
}

bool TestPki::MakeServer(absl::string_view name) {
  const std::string ext = Path(absl::StrCat(name, ".ext"));
  std::ofstream(ext) << "subjectAltName=IP:127.0.0.1,DNS:localhost\n"
                     << "extendedKeyUsage=serverAuth\n";
  const std::string csr = Path(absl::StrCat(name, ".csr"));
  return Run(absl::StrCat(
             "openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 "
             "-nodes -subj '/CN=",
             name, "' -keyout ", Path(absl::StrCat(name, ".key")), " -out ",
             csr)) &&
         Run(absl::StrCat("openssl x509 -req -days 2 -in ", csr, " -CA ",
                          Path("ca.pem"), " -CAkey ", Path("ca.key"),
                          " -CAcreateserial -extfile ", ext, " -out ",
                          Path(absl::StrCat(name, ".pem"))));
}

bool TestPki::Install(absl::string_view name) {
  std::error_code error;
  const auto overwrite = std::filesystem::copy_options::overwrite_existing;
  return std::filesystem::copy_file(Path(absl::StrCat(name, ".pem")),
                                    Path("server.pem"), overwrite, error) &&
         std::filesystem::copy_file(Path(absl::StrCat(name, ".key")),
                                    Path("server.key"), overwrite, error);
}

bool TestPki::Run(const std::string& command) const {
  if (dir_.empty()) return false;
  const std::string logged =
      absl::StrCat(command, " >>", Path("openssl.log"), " 2>&1");
  return std::system(logged.c_str()) == 0;
}

}  // namespace rio::testkit
