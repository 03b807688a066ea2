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

// The client side (hermod's connections to NATS): the peer verified against ca_file (else the
// system's CAs) and its name, unless verify is off; a client certificate when cert_file is set.
class TlsClientContext {
 public:
  struct Options {
    std::string ca_file;
    std::string cert_file;
    std::string key_file;
    bool verify = true;
  };
  // nullptr with *error naming the file that could not be loaded.
  static std::unique_ptr<TlsClientContext> Create(const Options& options, std::string* error);
  ~TlsClientContext();
  TlsClientContext(const TlsClientContext&) = delete;
  TlsClientContext& operator=(const TlsClientContext&) = delete;

  // A client session on fd, for SSL_connect: server_name is sent as SNI (a host name) and is
  // the name, or the address, the certificate must carry. nullptr: out of memory.
  SSL* NewSession(int fd, const std::string& server_name);

 private:
  TlsClientContext(SSL_CTX* ctx, bool verify) : ctx_(ctx), verify_(verify) {}
  SSL_CTX* ctx_;
  bool verify_;
};

// Why a TLS call failed: OpenSSL's queued reason (the queue is cleared), with the peer
// certificate's verification result when that is what failed.
std::string TlsFailure(SSL* ssl);

}  // namespace hermod::net
