// hermod's command line: serve, genconfig, checkconfig, gentoken, checktoken, version, bench.
//
// Every command that reads a config reads it the way `serve` does (defaults, the file,
// HERMOD_* variables, flags), so `gentoken` signs with, and `checktoken` verifies with,
// exactly the keys the server would use.
#include <nats/nats.h>
#include <spdlog/spdlog.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <iostream>
#include <optional>
#include <sstream>
#include <string>
#include <vector>

#include "app/build_info.h"
#include "app/logging.h"
#include "app/server.h"
#include "auth/token_signer.h"
#include "auth/token_verifier.h"
#include "config/config.h"

extern char** environ;

namespace {

struct ServeFlags {
  std::string config_file;
  std::optional<std::string> bind;
  std::optional<uint64_t> port;
  std::optional<uint64_t> workers;
  bool echo = false;
  std::optional<std::string> log_level;
  std::optional<std::string> log_format;
  std::optional<std::string> tls_cert;
  std::optional<std::string> tls_key;
  // Refuse the Centrifugo keys hermod does not support instead of warning about them.
  bool strict = false;
};

// Defaults, then the file, then HERMOD_* variables, then flags. *sources says which were
// applied, for the one config log line; *service_links names the Kubernetes variables that
// were skipped (config::IsKubernetesServiceLink); *warnings has one line per Centrifugo key
// that hermod ignores (with flags.strict, those keys are an error instead).
bool LoadConfig(const ServeFlags& flags, hermod::config::Config& config, std::string* error,
                std::string* sources = nullptr, std::string* service_links = nullptr,
                std::vector<std::string>* warnings = nullptr) {
  std::string applied = "defaults";
  if (!flags.config_file.empty()) {
    std::vector<std::string> ignored;
    if (!hermod::config::ApplyFile(flags.config_file, config, error, &ignored)) return false;
    if (flags.strict && !ignored.empty()) {
      *error = flags.config_file + ": --strict: " + std::to_string(ignored.size()) +
               " Centrifugo key(s) hermod does not support:";
      for (const std::string& line : ignored) *error += "\n  " + line;
      return false;
    }
    if (warnings != nullptr) *warnings = std::move(ignored);
    applied += ", file " + flags.config_file;
  }
  if (!hermod::config::ApplyEnvironment(environ, config, error)) return false;
  std::string variables, ignored;
  for (char** e = environ; *e != nullptr; ++e) {
    std::string_view entry = *e;
    if (!entry.starts_with("HERMOD_")) continue;
    const size_t eq = entry.find('=');
    const bool link =
        eq != std::string_view::npos &&
        hermod::config::IsKubernetesServiceLink(entry.substr(0, eq), entry.substr(eq + 1));
    std::string& list = link ? ignored : variables;
    list += (list.empty() ? "" : " ") + std::string(entry.substr(0, eq));
  }
  if (service_links != nullptr) *service_links = ignored;
  if (!variables.empty()) applied += ", environment " + variables;
  std::string set;
  auto flag = [&](bool present, const char* name) {
    if (present) set += (set.empty() ? "" : " ") + std::string(name);
  };
  flag(flags.bind.has_value(), "--bind");
  flag(flags.port.has_value(), "--port");
  flag(flags.workers.has_value(), "--workers");
  flag(flags.echo, "--echo");
  flag(flags.log_level.has_value(), "--log-level");
  flag(flags.log_format.has_value(), "--log-format");
  flag(flags.tls_cert.has_value(), "--tls-cert");
  flag(flags.tls_key.has_value(), "--tls-key");
  if (!set.empty()) applied += ", flags " + set;
  if (flags.bind) config.bind = *flags.bind;
  if (flags.port) config.port = *flags.port;
  if (flags.workers) config.workers = *flags.workers;
  if (flags.echo) config.echo = true;
  if (flags.log_level) config.log_level = *flags.log_level;
  if (flags.log_format) config.log_format = *flags.log_format;
  if (flags.tls_cert) config.tls.cert_file = *flags.tls_cert;
  if (flags.tls_key) config.tls.key_file = *flags.tls_key;
  if (sources != nullptr) *sources = applied;
  hermod::config::ResolveEngine(config);
  hermod::config::ResolveProxies(config);
  return hermod::config::Validate(config, error);
}

void AddServeFlags(CLI::App* command, ServeFlags& flags) {
  command->add_option("-c,--config", flags.config_file, "JSON config file");
  command->add_option("--bind", flags.bind, "address to listen on (default 0.0.0.0)");
  command->add_option("-p,--port", flags.port, "port to listen on; 0 picks a free one");
  command->add_option("-w,--workers", flags.workers, "event loops (default: one per core)");
  command->add_flag("--echo", flags.echo, "serve the RFC 6455 echo endpoint /connection/echo");
  command->add_option("--log-level", flags.log_level, "trace, debug, info, warn, error, off");
  command->add_option("--log-format", flags.log_format, "text, or json: one object per line");
  command->add_option("--tls-cert", flags.tls_cert, "PEM certificate chain (enables TLS)");
  command->add_option("--tls-key", flags.tls_key, "PEM private key");
  command->add_flag("--strict", flags.strict,
                    "refuse Centrifugo config keys hermod does not support (default: warn)");
}

int RunBench(int argc, char** argv) {
  // `hermod bench ...` runs the hermod-bench binary installed beside this one (found on PATH,
  // as this one was, when argv[0] has no slash).
  std::string self = argv[0];
  size_t slash = self.rfind('/');
  std::string bench =
      (slash == std::string::npos ? std::string() : self.substr(0, slash + 1)) + "hermod-bench";
  std::vector<char*> args;
  args.push_back(bench.data());
  for (int i = 2; i < argc; ++i) args.push_back(argv[i]);
  args.push_back(nullptr);
  execvp(bench.c_str(), args.data());
  std::perror(bench.c_str());
  return 127;
}

// Once, after the server is gone: every NATS user (broker, stores, consumers) has closed and
// destroyed its connections by then, so libnats's own threads end here at once and none
// outlives main. Closed earlier, a user still connected would hold it up to the timeout and
// then work on a closed library.
void CloseNatsLibrary() {
  const natsStatus s = nats_CloseAndWait(2000);
  if (s != NATS_OK && s != NATS_NOT_INITIALIZED) {
    spdlog::warn("libnats threads did not end: {}", natsStatus_GetText(s));
  }
}

int64_t WallSeconds() {
  return std::chrono::duration_cast<std::chrono::seconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

std::string JsonString(std::string_view s) {
  std::string out;
  hermod::config::AppendJsonString(out, s);
  return out;
}

struct TokenFlags {
  std::string config_file;
  std::string user;
  int64_t ttl_s = 3600;
  std::string channel;
  std::string info;
  std::string key_file;
  std::string token;
};

int GenToken(const TokenFlags& flags) {
  hermod::config::Config config;
  std::string error;
  ServeFlags serve;
  serve.config_file = flags.config_file;
  if (!LoadConfig(serve, config, &error)) {
    std::cerr << "hermod: " << error << "\n";
    return 2;
  }
  hermod::auth::TokenSigner signer;
  if (!flags.key_file.empty()) {
    std::ifstream in(flags.key_file, std::ios::binary);
    std::stringstream pem;
    pem << in.rdbuf();
    if (!in || !hermod::auth::TokenSigner::FromPrivateKeyPem(pem.str(), &signer, &error)) {
      if (!in) error = std::string("cannot read ") + std::strerror(errno);
      std::cerr << "hermod: --key " << flags.key_file << ": " << error << "\n";
      return 2;
    }
  } else if (!hermod::auth::TokenSigner::FromConfig(config, &signer, &error)) {
    std::cerr << "hermod: " << error << "\n";
    return 2;
  }
  if (flags.ttl_s < 0) {
    std::cerr << "hermod: --ttl: seconds, 0 for no expiry\n";
    return 2;
  }
  hermod::auth::TokenRequest request;
  request.user = flags.user;
  request.now_s = WallSeconds();
  request.ttl_s = flags.ttl_s;
  request.channel = flags.channel;
  request.info = flags.info;
  request.audience = config.token_audience;
  request.issuer = config.token_issuer;
  std::string token;
  if (!signer.Sign(request, &token, &error)) {
    std::cerr << "hermod: " << error << "\n";
    return 2;
  }
  std::cout << token << "\n";
  std::cerr << signer.algorithm() << " " << (flags.channel.empty() ? "connection" : "subscription")
            << " token for user " << JsonString(flags.user)
            << (flags.ttl_s > 0 ? ", expires in " + std::to_string(flags.ttl_s) + " s"
                                : ", no expiry")
            << "\n";
  return 0;
}

int CheckToken(const TokenFlags& flags) {
  hermod::config::Config config;
  std::string error;
  ServeFlags serve;
  serve.config_file = flags.config_file;
  if (!LoadConfig(serve, config, &error)) {
    std::cerr << "hermod: " << error << "\n";
    return 2;
  }
  hermod::auth::TokenVerifier verifier(hermod::auth::TokenKeys::FromConfig(config));
  if (!verifier.enabled()) {
    std::cerr << "hermod: no token key configured (token_hmac_secret_key, "
                 "token_rsa_public_key, token_ecdsa_public_key)\n";
    return 2;
  }
  hermod::auth::TokenClaims claims;
  std::string reason;
  const int64_t now = WallSeconds();
  switch (verifier.Verify(flags.token, now, &claims, &reason)) {
    case hermod::auth::TokenStatus::kOk:
      break;
    case hermod::auth::TokenStatus::kExpired:
      std::cerr << "hermod: token expired: " << reason << "\n";
      return 1;
    case hermod::auth::TokenStatus::kInvalid:
      std::cerr << "hermod: token invalid: " << reason << "\n";
      return 1;
  }
  std::string channels = "[";
  for (size_t i = 0; i < claims.channels.size(); ++i) {
    channels += (i == 0 ? "" : ",") + JsonString(claims.channels[i]);
  }
  channels += "]";
  std::cout << "{\"valid\":true,\"sub\":" << JsonString(claims.user)
            << ",\"exp\":" << claims.expires_at
            << ",\"expires_in_s\":" << (claims.expires_at == 0 ? 0 : claims.expires_at - now)
            << ",\"channel\":" << JsonString(claims.channel) << ",\"channels\":" << channels
            << ",\"info\":" << (claims.info.empty() ? "null" : claims.info) << "}\n";
  return 0;
}

// `hermod version` and `hermod --version`: the version from CMake's project(), then the
// commit, compiler and build type.
std::string VersionText() {
#if defined(__clang__)
  const std::string compiler = "clang " + std::to_string(__clang_major__) + "." +
                               std::to_string(__clang_minor__) + "." +
                               std::to_string(__clang_patchlevel__);
#else
  const std::string compiler = "gcc " __VERSION__;
#endif
  return std::string("hermod ") + HERMOD_VERSION + "\ncommit: " + hermod::app::kGitCommit +
         "\ncompiler: " + compiler + "\nbuild type: " + hermod::app::kBuildType;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc > 1 && std::string_view(argv[1]) == "bench") return RunBench(argc, argv);

  CLI::App app{"hermod: a real-time messaging server"};
  app.require_subcommand(1);
  app.set_version_flag("--version", VersionText, "print the version and exit");
  ServeFlags serve_flags;
  CLI::App* serve = app.add_subcommand("serve", "run the server");
  AddServeFlags(serve, serve_flags);
  ServeFlags gen_flags;
  CLI::App* genconfig = app.add_subcommand("genconfig", "print the effective config as JSON");
  AddServeFlags(genconfig, gen_flags);
  std::string check_file;
  bool check_strict = false;
  CLI::App* checkconfig = app.add_subcommand(
      "checkconfig", "validate a config file, with HERMOD_* variables applied as serve does");
  checkconfig->add_option("file", check_file, "JSON config file")->required();
  checkconfig->add_flag("--strict", check_strict,
                        "refuse Centrifugo config keys hermod does not support (default: warn)");
  TokenFlags token_flags;
  CLI::App* gentoken = app.add_subcommand(
      "gentoken", "sign a connection (or, with --channel, subscription) JWT with the config's key");
  gentoken->add_option("-u,--user", token_flags.user, "the sub claim (user id)")->required();
  gentoken->add_option("-t,--ttl", token_flags.ttl_s, "seconds until exp; 0: no exp")
      ->capture_default_str();
  gentoken->add_option("--channel", token_flags.channel,
                       "a subscription token for this channel instead of a connection token");
  gentoken->add_option("--info", token_flags.info, "JSON for the info claim");
  gentoken->add_option("-c,--config", token_flags.config_file, "JSON config file");
  gentoken->add_option("--key", token_flags.key_file,
                       "PEM private key (RSA: RS256, ECDSA: ES256/384/512) instead of the "
                       "config's HMAC secret");
  CLI::App* checktoken =
      app.add_subcommand("checktoken", "verify a JWT as the server would; print its claims");
  checktoken->add_option("token", token_flags.token, "the JWT")->required();
  checktoken->add_option("-c,--config", token_flags.config_file, "JSON config file");
  CLI::App* version = app.add_subcommand("version", "version, commit, compiler, build type");
  app.add_subcommand("bench", "run hermod-bench (see hermod-bench --help)");
  CLI11_PARSE(app, argc, argv);

  if (*version) {
    std::cout << VersionText() << "\n";
    return 0;
  }
  if (*gentoken) return GenToken(token_flags);
  if (*checktoken) return CheckToken(token_flags);
  std::string error;
  if (*checkconfig) {
    // The file as `serve --config` would load it, environment included: a HERMOD_* variable
    // that would stop the server stops the check too.
    hermod::config::Config config;
    ServeFlags check_flags;
    check_flags.config_file = check_file;
    check_flags.strict = check_strict;
    std::vector<std::string> warnings;
    if (!LoadConfig(check_flags, config, &error, nullptr, nullptr, &warnings)) {
      std::cerr << "hermod: " << error << "\n";
      return 2;
    }
    for (const std::string& line : warnings)
      std::cerr << "hermod: warning: ignoring " << line << "\n";
    std::cout << check_file << ": ok\n";
    return 0;
  }
  hermod::config::Config config;
  if (*genconfig) {
    if (!LoadConfig(gen_flags, config, &error)) {
      std::cerr << "hermod: " << error << "\n";
      return 2;
    }
    std::cout << hermod::config::ToJson(config);
    return 0;
  }
  std::string sources, service_links;
  std::vector<std::string> warnings;
  if (!LoadConfig(serve_flags, config, &error, &sources, &service_links, &warnings)) {
    std::cerr << "hermod: " << error << "\n";
    return 2;
  }
  hermod::app::SetUpLogging(config.log_format, config.log_level, config.log_buffer_bytes,
                            std::chrono::milliseconds(config.log_flush_timeout_ms));
  spdlog::info("config: {} (log_level {}, log_format {})", sources, config.log_level,
               config.log_format);
  for (const std::string& line : warnings) spdlog::warn("config: ignoring {}", line);
  if (!service_links.empty()) {
    spdlog::info("ignored Kubernetes service-link variables (not configuration): {}",
                 service_links);
  }
  int code = 0;
  {
    hermod::app::Server server(std::move(config));
    code = server.Run();
  }
  CloseNatsLibrary();
  hermod::app::StopLogging();  // the buffered lines are written before the process ends
  return code;
}
