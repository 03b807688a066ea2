// TLS with OpenSSL: one SSL_CTX for the process (shared by every loop; OpenSSL makes that
// safe), one SSL per connection, driven by the connection's own non-blocking reads and
// writes. Buffers are released while a connection is idle (SSL_MODE_RELEASE_BUFFERS).
#pragma once

#include <openssl/ssl.h>

#include <memory>
#include <string>

namespace hermod::net {

class TlsContext {
 public:
  // Loads a PEM certificate chain and private key; nullptr with *error set on failure.
  static std::unique_ptr<TlsContext> Create(const std::string& cert_file,
                                            const std::string& key_file, std::string* error);
  ~TlsContext();
  TlsContext(const TlsContext&) = delete;
  TlsContext& operator=(const TlsContext&) = delete;

  // A server-side session on fd; the handshake runs inside the first reads.
  SSL* NewSession(int fd);

 private:
  explicit TlsContext(SSL_CTX* ctx) : ctx_(ctx) {}
  SSL_CTX* ctx_;
};

}  // namespace hermod::net
