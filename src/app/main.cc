// hermod's command line: serve, genconfig, checkconfig, bench.
#include <spdlog/sinks/stdout_color_sinks.h>
#include <spdlog/spdlog.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <cstdio>
#include <iostream>
#include <optional>
#include <string>

#include "app/server.h"
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
  std::optional<std::string> tls_cert;
  std::optional<std::string> tls_key;
};

// Defaults, then the file, then HERMOD_* variables, then flags.
bool LoadConfig(const ServeFlags& flags, hermod::config::Config& config, std::string* error) {
  if (!flags.config_file.empty() && !hermod::config::ApplyFile(flags.config_file, config, error)) {
    return false;
  }
  if (!hermod::config::ApplyEnvironment(environ, config, error)) return false;
  if (flags.bind) config.bind = *flags.bind;
  if (flags.port) config.port = *flags.port;
  if (flags.workers) config.workers = *flags.workers;
  if (flags.echo) config.echo = true;
  if (flags.log_level) config.log_level = *flags.log_level;
  if (flags.tls_cert) config.tls.cert_file = *flags.tls_cert;
  if (flags.tls_key) config.tls.key_file = *flags.tls_key;
  return hermod::config::Validate(config, error);
}

void AddServeFlags(CLI::App* command, ServeFlags& flags) {
  command->add_option("-c,--config", flags.config_file, "JSON config file");
  command->add_option("--bind", flags.bind, "address to listen on (default 0.0.0.0)");
  command->add_option("-p,--port", flags.port, "port to listen on; 0 picks a free one");
  command->add_option("-w,--workers", flags.workers, "event loops (default: one per core)");
  command->add_flag("--echo", flags.echo, "serve the RFC 6455 echo endpoint /connection/echo");
  command->add_option("--log-level", flags.log_level, "trace, debug, info, warn, error, off");
  command->add_option("--tls-cert", flags.tls_cert, "PEM certificate chain (enables TLS)");
  command->add_option("--tls-key", flags.tls_key, "PEM private key");
}

int RunBench(int argc, char** argv) {
  // `hermod bench ...` runs the hermod-bench binary installed beside this one.
  std::string self = argv[0];
  size_t slash = self.rfind('/');
  std::string bench =
      (slash == std::string::npos ? std::string() : self.substr(0, slash + 1)) + "hermod-bench";
  std::vector<char*> args;
  args.push_back(bench.data());
  for (int i = 2; i < argc; ++i) args.push_back(argv[i]);
  args.push_back(nullptr);
  execv(bench.c_str(), args.data());
  std::perror(bench.c_str());
  return 127;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc > 1 && std::string_view(argv[1]) == "bench") return RunBench(argc, argv);

  CLI::App app{"hermod: a real-time messaging server"};
  app.require_subcommand(1);
  ServeFlags serve_flags;
  CLI::App* serve = app.add_subcommand("serve", "run the server");
  AddServeFlags(serve, serve_flags);
  ServeFlags gen_flags;
  CLI::App* genconfig = app.add_subcommand("genconfig", "print the effective config as JSON");
  AddServeFlags(genconfig, gen_flags);
  std::string check_file;
  CLI::App* checkconfig = app.add_subcommand("checkconfig", "validate a config file");
  checkconfig->add_option("file", check_file, "JSON config file")->required();
  app.add_subcommand("bench", "run hermod-bench (see hermod-bench --help)");
  CLI11_PARSE(app, argc, argv);

  auto logger = spdlog::stderr_color_mt("hermod");
  spdlog::set_default_logger(logger);
  spdlog::set_pattern("%Y-%m-%dT%H:%M:%S.%e %^%l%$ %v");

  std::string error;
  if (*checkconfig) {
    hermod::config::Config config;
    if (!hermod::config::ApplyFile(check_file, config, &error) ||
        !hermod::config::Validate(config, &error)) {
      std::cerr << "hermod: " << error << "\n";
      return 2;
    }
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
  if (!LoadConfig(serve_flags, config, &error)) {
    std::cerr << "hermod: " << error << "\n";
    return 2;
  }
  spdlog::set_level(spdlog::level::from_str(config.log_level));
  hermod::app::Server server(std::move(config));
  return server.Run();
}
