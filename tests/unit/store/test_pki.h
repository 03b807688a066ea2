// A throwaway PKI for TLS tests, made with the openssl CLI in a temporary directory: a CA, a
// server certificate for 127.0.0.1 and localhost signed by it, a client certificate signed by
// it, and a second CA that signed nothing here (the wrong CA). Removed with the object.
#pragma once

#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>

namespace hermod::test {

class TestPki {
 public:
  TestPki() {
    char tmpl[] = "/tmp/hermod-pki-XXXXXX";
    dir_ = mkdtemp(tmpl);
    const std::string script =
        "set -e; cd '" + dir_ +
        "'\n"
        "key() { openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out $1 "
        "2>/dev/null; }\n"
        "key ca.key; key other-ca.key; key server.key; key client.key\n"
        "openssl req -x509 -new -key ca.key -out ca.pem -days 2 -subj /CN=hermod-test-ca\n"
        "openssl req -x509 -new -key other-ca.key -out other-ca.pem -days 2 "
        "-subj /CN=hermod-other-ca\n"
        "printf 'subjectAltName=IP:127.0.0.1,DNS:localhost\\n' > server.ext\n"
        "printf 'extendedKeyUsage=clientAuth\\n' > client.ext\n"
        "openssl req -new -key server.key -out server.csr -subj /CN=localhost\n"
        "openssl x509 -req -in server.csr -CA ca.pem -CAkey ca.key -CAcreateserial "
        "-out server.pem -days 2 -extfile server.ext 2>/dev/null\n"
        "openssl req -new -key client.key -out client.csr -subj /CN=hermod-node\n"
        "openssl x509 -req -in client.csr -CA ca.pem -CAkey ca.key -CAcreateserial "
        "-out client.pem -days 2 -extfile client.ext 2>/dev/null\n";
    const std::string path = dir_ + "/make.sh";
    std::ofstream(path) << script;
    ok_ = std::system(("sh '" + path + "'").c_str()) == 0;
  }
  ~TestPki() {
    std::error_code ec;
    std::filesystem::remove_all(dir_, ec);
  }
  TestPki(const TestPki&) = delete;
  TestPki& operator=(const TestPki&) = delete;

  static bool Available() { return std::system("openssl version >/dev/null 2>&1") == 0; }
  bool ok() const { return ok_; }
  std::string file(const std::string& name) const { return dir_ + "/" + name; }

 private:
  std::string dir_;
  bool ok_ = false;
};

}  // namespace hermod::test
