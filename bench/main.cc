// hermod-bench: the command line. Parses the scenario (or preset) and options, runs it (in
// this process or across workers), prints the summary, writes the JSON and HTML reports,
// grades against an SLO file and compares against an earlier report.
//
// Exit codes: 0 ok; 1 the run could not measure anything (no connection became ready);
// 2 bad usage; 3 regression against --compare; 4 an objective of --slo missed (grade C, D or
// F); 5 the server refused a publication (no permission, no such channel): the run stops at
// once with the server's error. When several apply: 1, else 5, else 4, else 3 (what broke
// the run before the verdict on it). Ctrl-C (SIGINT) ends the run early: the summary and
// reports are written from what was measured, marked "interrupted". The inbox scenario
// (inbox.h) also exits 6 when a stored publication was not acked exactly once; the history
// scenario (history.h) exits 6 when a read was answered wrongly or failed, or none was made.
#include <signal.h>
#include <sys/resource.h>

#include <CLI/CLI.hpp>
#include <cstdio>
#include <fstream>
#include <iostream>
#include <sstream>
#include <string>
#include <vector>

#include "adapter.h"
#include "grade.h"
#include "history.h"
#include "html_report.h"
#include "inbox.h"
#include "interrupt.h"
#include "presets.h"
#include "regression.h"
#include "report.h"
#include "workers.h"

using namespace hermod::bench;

namespace {

bool ReadFile(const std::string& path, std::string& out) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return false;
  std::ostringstream ss;
  ss << in.rdbuf();
  out = ss.str();
  return true;
}

bool WriteFile(const std::string& path, const std::string& data) {
  std::ofstream out(path, std::ios::binary);
  out << data;
  return static_cast<bool>(out);
}

void RaiseFileLimit() {
  rlimit r;
  if (getrlimit(RLIMIT_NOFILE, &r) == 0 && r.rlim_cur < r.rlim_max) {
    r.rlim_cur = r.rlim_max;
    setrlimit(RLIMIT_NOFILE, &r);
  }
}

void PrintSummary(const RunConfig& c, const Summary& m, const GradeResult* grade,
                  bool interrupted) {
  std::printf("scenario %s (%s) protocol %s url %s: %u connections, %.2f s measured\n",
              ScenarioName(c.scenario), ScenarioName(Effective(c)), ProtocolName(c.protocol),
              c.url.c_str(), TotalConnections(c), m.measured_s);
  if (interrupted) std::printf("  interrupted (SIGINT): partial figures\n");
  if (IsOverloadTest(c)) {
    // -r 0 publishes as fast as the client can: the server is overloaded on purpose, so what
    // it dropped is the result and the latency is mostly queueing.
    std::printf(
        "  overload test (-r 0: publishers send as fast as they can): loss %s of %llu "
        "expected deliveries; latency below is queueing under overload\n",
        Percent(LossFraction(m)).c_str(), static_cast<unsigned long long>(m.expected));
  }
  if (Effective(c) != Scenario::kConnect) {
    std::printf("  sent %llu (%.0f/s)  delivered %llu (%.0f/s, %.2f MB/s)\n",
                static_cast<unsigned long long>(m.sent), m.sent_per_s,
                static_cast<unsigned long long>(m.delivered), m.deliveries_per_s,
                m.bytes_in_per_s / 1e6);
    std::printf("  latency ms: p50 %.3f  p90 %.3f  p99 %.3f  p99.9 %.3f  max %.3f\n",
                m.latency.p50 / 1e3, m.latency.p90 / 1e3, m.latency.p99 / 1e3, m.latency.p999 / 1e3,
                m.latency.max / 1e3);
    // The headline: a gap no unsubscribe push or disconnect announced.
    std::printf("  lost silently: %llu  (subscribers %llu)\n",
                static_cast<unsigned long long>(m.lost_silently),
                static_cast<unsigned long long>(m.subscribers_lost_silently));
    std::printf(
        "  lost %llu (told %llu; subscribers with a gap %llu, told %llu)  duplicated %llu"
        "  undelivered %llu\n",
        static_cast<unsigned long long>(m.lost), static_cast<unsigned long long>(m.lost_told),
        static_cast<unsigned long long>(m.subscribers_lost),
        static_cast<unsigned long long>(m.subscribers_told),
        static_cast<unsigned long long>(m.duplicates),
        static_cast<unsigned long long>(m.undelivered));
  }
  std::printf("  connects ok %llu failed %llu (%.0f/s measured)  connect ms p50 %.3f p99 %.3f\n",
              static_cast<unsigned long long>(m.connects_ok),
              static_cast<unsigned long long>(m.connects_failed), m.connects_per_s,
              m.connect.p50 / 1e3, m.connect.p99 / 1e3);
  std::printf("  errors %llu, loss %s  disconnects %llu\n",
              static_cast<unsigned long long>(m.errors), Percent(LossFraction(m)).c_str(),
              static_cast<unsigned long long>(m.disconnects));
  if (grade) {
    std::printf("  grade %s (worst ratio to SLO %.2f)\n", grade->grade.c_str(), grade->worst);
    for (const GradeCheck& check : grade->checks) {
      if (!check.ok) {
        std::printf("  SLO missed: %s %.4g, objective %.4g\n", check.name.c_str(), check.value,
                    check.limit);
      }
    }
  }
}

// The server's answer to a refused publication, if the run stopped on one (adapter.h).
std::string RefusedReason(const RunStats& stats) {
  for (const auto& [reason, n] : stats.errors) {
    if (reason.starts_with(kPublishRefused)) return reason.substr(kPublishRefused.size());
  }
  return {};
}

}  // namespace

int main(int argc, char** argv) {
  CatchInterrupts();  // before any thread or worker exists: they inherit the blocked SIGINT
  signal(SIGPIPE, SIG_IGN);
  RunConfig config;
  std::string scenario_name, protocol_name = "echo", load_name = "fanout";
  std::string json_path, html_path, slo_path, compare_path;
  std::vector<std::string> urls;
  double tolerance = 0.1;
  bool quiet = false;
  InboxOptions inbox;
  std::string ack_mode = "batch";
  HistoryOptions history;
  std::string history_via = "client";

  CLI::App app{"hermod-bench: WebSocket load generator for hermod and its peers"};
  app.add_option("scenario", scenario_name,
                 "echo | fanout | channels | connect | soak | stand | inbox | history, or a "
                 "preset: baseline | "
                 "stress | spike | endurance")
      ->required();
  app.add_option("-u,--url", urls,
                 "ws://host:port/path of the server; several: connection i goes to the "
                 "(i mod count)-th, e.g. the nodes of a cluster")
      ->required();
  app.add_option("-p,--protocol", protocol_name,
                 "echo | raw | nats | mqtt | hermod | hermod-protobuf | sse | http_stream "
                 "(hermod, subscribers on uni_sse or fragments, or uni_http_stream)")
      ->capture_default_str();
  app.add_option("-c,--connections", config.connections,
                 "echo: connections; fanout/soak: subscribers; connect: concurrency")
      ->capture_default_str();
  app.add_option("--channels", config.channels, "channels: number of channels")
      ->capture_default_str();
  app.add_option("--subscribers", config.subscribers, "channels: subscribers per channel")
      ->capture_default_str();
  app.add_option("--publishers", config.publishers, "fanout: publishers")->capture_default_str();
  app.add_option("-s,--size", config.size, "payload bytes")->capture_default_str();
  app.add_option("--token", config.token,
                 "sse, http_stream: the subscribers' connection token (a JWT whose `channels` "
                 "claim names the channels); sse without it reads /connection/fragments");
  app.add_flag("--deflate", config.deflate,
               "offer permessage-deflate and compress every message sent; a server that "
               "declines fails the connection");
  app.add_option("-r,--rate", config.rate, "messages/s per publisher; 0: as fast as possible")
      ->capture_default_str();
  app.add_option("--inflight", config.inflight, "echo at full speed: messages in flight")
      ->capture_default_str();
  app.add_option("-d,--duration", config.duration_s, "seconds of measurement")
      ->capture_default_str();
  app.add_option("-n,--messages", config.messages, "messages per publisher; 0: no limit")
      ->capture_default_str();
  app.add_option("--ramp", config.ramp, "new connections/s during setup; 0: at once")
      ->capture_default_str();
  app.add_option("--connect-rate", config.connect_rate, "connect: new connections/s")
      ->capture_default_str();
  app.add_option("--group-size", config.group_size, "stand: members of each group channel")
      ->capture_default_str();
  app.add_option("--personal-rate", config.personal_rate,
                 "stand: publications/s to personal channels, in all")
      ->capture_default_str();
  app.add_option("--group-rate", config.group_rate,
                 "stand: publications/s to group channels, in all")
      ->capture_default_str();
  app.add_option("--churners", config.churners,
                 "stand: reconnecting connection slots (0: connect-rate x 10)")
      ->capture_default_str();
  app.add_option("--load", load_name, "soak: the steady load (echo | fanout | channels)")
      ->capture_default_str();
  app.add_option("-t,--threads", config.threads, "client event loops (threads)")
      ->capture_default_str();
  app.add_option("--source", config.source, "local address to bind (e.g. 127.0.0.2)");
  app.add_option("--per-process", config.per_process,
                 "connections per process before forking workers on 127.0.0.2, .3, ...")
      ->capture_default_str();
  app.add_option("--setup-timeout", config.setup_timeout_s, "seconds for connect + subscribe")
      ->capture_default_str();
  app.add_option("--drain", config.drain_s, "seconds to wait for in-flight deliveries")
      ->capture_default_str();
  app.add_option("--server-pid", config.server_pid, "sample this process's RSS and CPU");
  app.add_option("--json", json_path, "write the JSON report here");
  app.add_option("--html", html_path, "write the HTML report here");
  app.add_option("--slo", slo_path, "grade A+..F against this SLO JSON file");
  app.add_option("--compare", compare_path, "exit 3 if worse than this earlier JSON report");
  app.add_option("--tolerance", tolerance, "allowed fraction worse for --compare")
      ->capture_default_str();
  app.add_option("--api-url", inbox.api_url,
                 "inbox, history: http://host:port of the server API (default: -u's)");
  app.add_option("--api-key", inbox.api_key, "inbox, history: the API key")->capture_default_str();
  app.add_option("--hmac-secret", inbox.secret,
                 "inbox, hermod: token_hmac_secret_key, to sign each user's JWT")
      ->capture_default_str();
  app.add_option("--namespace", inbox.ns, "inbox, hermod: the inbox namespace")
      ->capture_default_str();
  app.add_option("--ack", ack_mode,
                 "inbox: batch (one ack per read: the offsets read / JetStream AckAll) | each "
                 "(one ack per delivery / JetStream explicit) | up_to (hermod: one ack per "
                 "read, up_to the highest offset read)")
      ->capture_default_str();
  app.add_option("--api-batch", inbox.batch,
                 "inbox: publications per request (hermod: one API `batch` with parallel: true; "
                 "JetStream: that many publishes written at once, each awaiting its PubAck)")
      ->capture_default_str();
  app.add_option("--js-storage", inbox.js_storage,
                 "inbox, nats: the stream's storage (file | memory)")
      ->capture_default_str();
  app.add_option("--fill", history.fill, "history: publications per channel before the reads")
      ->capture_default_str();
  app.add_option("--limit", history.limit, "history: publications per read")->capture_default_str();
  app.add_option("--via", history_via,
                 "history: client (the `history` command over WebSocket) | api (/api/history)")
      ->capture_default_str();
  app.add_flag(
      "--no-progress", [&](int64_t) { config.progress = false; }, "no live progress line");
  app.add_flag("-q,--quiet", quiet, "no summary on stdout");
  app.add_flag("--phases", config.phases,
               "print 'hermod-bench: measure start' on stderr as the measured phase starts");
  CLI11_PARSE(app, argc, argv);

  std::string error;
  if (!ParseProtocol(protocol_name, config.protocol)) {
    std::cerr << "hermod-bench: unknown protocol " << protocol_name << "\n";
    return 2;
  }
  for (const std::string& url : urls) {
    if (!ParseUrl(url, config, &error)) {
      std::cerr << "hermod-bench: " << error << "\n";
      return 2;
    }
  }
  if (scenario_name == "inbox") {
    // -c users, -n publications per user, --publishers concurrent publishers (16 unless
    // given), -r publications/s in all, -d the time bound of the measure (inbox.h).
    if (config.protocol != Protocol::kHermod && config.protocol != Protocol::kNats) {
      std::cerr << "hermod-bench: inbox speaks -p hermod or -p nats (JetStream)\n";
      return 2;
    }
    if (ack_mode != "batch" && ack_mode != "each" &&
        (ack_mode != "up_to" || config.protocol != Protocol::kHermod)) {
      std::cerr << "hermod-bench: --ack must be batch or each (or up_to with -p hermod)\n";
      return 2;
    }
    inbox.ack_each = ack_mode == "each";
    inbox.ack_up_to = ack_mode == "up_to";
    inbox.per_user = config.messages != 0 ? config.messages : 100;
    inbox.publishers = app.get_option("--publishers")->count() > 0 ? config.publishers : 16;
    inbox.rate = config.rate;
    inbox.json_path = json_path;
    inbox.quiet = quiet;
    if (inbox.publishers == 0 || config.connections == 0 || inbox.batch == 0) {
      std::cerr << "hermod-bench: inbox needs users (-c) and publishers\n";
      return 2;
    }
    RaiseFileLimit();
    return RunInbox(config, inbox);
  }
  if (scenario_name == "history") {
    // --channels K filled with --fill N publications of -s bytes, then -c readers read
    // --limit L at -r reads/s in all (0: closed loop), -n reads at most, for -d seconds;
    // -p nats: the same on nats-server -js alone (history.h).
    if (config.protocol != Protocol::kHermod && config.protocol != Protocol::kNats) {
      std::cerr << "hermod-bench: history speaks -p hermod or -p nats (JetStream direct gets)\n";
      return 2;
    }
    if (history_via != "client" && history_via != "api") {
      std::cerr << "hermod-bench: --via must be client or api\n";
      return 2;
    }
    history.api = history_via == "api";
    history.channels = config.channels;
    history.publishers = app.get_option("--publishers")->count() > 0 ? config.publishers : 8;
    history.rate = config.rate;
    history.reads = config.messages;
    history.api_url = inbox.api_url;
    history.api_key = inbox.api_key;
    history.json_path = json_path;
    history.quiet = quiet;
    if (history.channels == 0 || history.fill == 0 || history.limit == 0 ||
        history.publishers == 0 || config.connections == 0) {
      std::cerr << "hermod-bench: history needs channels, --fill, --limit, publishers and "
                   "readers (-c)\n";
      return 2;
    }
    RaiseFileLimit();
    return RunHistory(config, history);
  }
  RunConfig preset = config;
  if (ApplyPreset(scenario_name, config.protocol, preset)) {
    // Presets fill what the command line left alone.
    RunConfig given = config;
    config = preset;
    auto keep = [&](const char* name, auto& field, const auto& value) {
      if (app.get_option(name)->count() > 0) field = value;
    };
    keep("--connections", config.connections, given.connections);
    keep("--channels", config.channels, given.channels);
    keep("--subscribers", config.subscribers, given.subscribers);
    keep("--publishers", config.publishers, given.publishers);
    keep("--size", config.size, given.size);
    keep("--rate", config.rate, given.rate);
    keep("--inflight", config.inflight, given.inflight);
    keep("--duration", config.duration_s, given.duration_s);
    keep("--messages", config.messages, given.messages);
    keep("--ramp", config.ramp, given.ramp);
    keep("--connect-rate", config.connect_rate, given.connect_rate);
    if (app.get_option("--load")->count() > 0 && !ParseScenario(load_name, config.load)) {
      std::cerr << "hermod-bench: unknown --load " << load_name << "\n";
      return 2;
    }
  } else {
    if (!ParseScenario(scenario_name, config.scenario)) {
      std::cerr << "hermod-bench: unknown scenario or preset " << scenario_name << "\n";
      return 2;
    }
    if (!ParseScenario(load_name, config.load) || config.load == Scenario::kSoak ||
        config.load == Scenario::kConnect || config.load == Scenario::kStand) {
      std::cerr << "hermod-bench: --load must be echo, fanout or channels\n";
      return 2;
    }
  }
  Scenario effective = Effective(config);
  if (config.protocol == Protocol::kEcho &&
      (effective == Scenario::kFanout || effective == Scenario::kChannels)) {
    std::cerr << "hermod-bench: an echo server has no channels; use echo, connect or soak "
                 "--load echo\n";
    return 2;
  }
  if (config.protocol == Protocol::kRaw &&
      (effective == Scenario::kChannels || effective == Scenario::kEcho)) {
    std::cerr << "hermod-bench: a raw broadcast server has one channel; use fanout or connect\n";
    return 2;
  }
  if (StreamsSubscribers(config.protocol) &&
      (effective == Scenario::kStand || effective == Scenario::kEcho ||
       effective == Scenario::kConnect)) {
    std::cerr << "hermod-bench: sse and http_stream measure fanout, channels or soak\n";
    return 2;
  }
  if (config.protocol == Protocol::kHermodHttpStream && config.token.empty()) {
    std::cerr << "hermod-bench: http_stream subscribes with --token (its `channels` claim)\n";
    return 2;
  }
  if (effective == Scenario::kStand && config.protocol != Protocol::kHermod) {
    std::cerr << "hermod-bench: stand speaks hermod's JSON protocol (-p hermod)\n";
    return 2;
  }
  if (effective == Scenario::kStand && config.publishers == 0 &&
      config.personal_rate + config.group_rate > 0) {
    std::cerr << "hermod-bench: stand needs --publishers for its publication rates\n";
    return 2;
  }
  if (effective == Scenario::kStand) {
    // Fixed here, so that worker processes (each churning its share of the rate) agree on
    // the layout.
    config.churners = config.connect_rate > 0 ? StandChurners(config) : 0;
  }
  Slo slo;
  bool grading = !slo_path.empty();
  if (grading) {
    std::string text;
    if (!ReadFile(slo_path, text) || !ParseSlo(text, slo, &error)) {
      std::cerr << "hermod-bench: --slo " << slo_path << ": "
                << (error.empty() ? "cannot read" : error) << "\n";
      return 2;
    }
  }
  std::map<std::string, double> old_figures;
  if (!compare_path.empty()) {
    std::string text;
    if (!ReadFile(compare_path, text) || !ReadSummaryFigures(text, old_figures, &error)) {
      std::cerr << "hermod-bench: --compare " << compare_path << ": "
                << (error.empty() ? "cannot read" : error) << "\n";
      return 2;
    }
  }

  RaiseFileLimit();
  if (IsOverloadTest(config) && !quiet) {
    std::cerr << "hermod-bench: -r 0 is an overload test: publishers send as fast as they can; "
                 "the loss is the result\n";
  }
  RunResult result = RunDistributed(config);
  Summary summary = Summarize(config, result);
  GradeResult grade;
  if (grading) grade = Grade(slo, summary);
  if (!quiet) PrintSummary(config, summary, grading ? &grade : nullptr, result.interrupted);
  if (result.interrupted && quiet) std::cerr << "hermod-bench: interrupted: partial figures\n";
  if (summary.errors != 0 && !quiet) {
    for (const auto& [reason, n] : result.stats.errors) {
      std::printf("  error: %s x%llu\n", reason.c_str(), static_cast<unsigned long long>(n));
    }
  }
  if (!json_path.empty() &&
      !WriteFile(json_path, ReportJson(config, result, summary, grading ? &grade : nullptr))) {
    std::cerr << "hermod-bench: cannot write " << json_path << "\n";
  }
  if (!html_path.empty() &&
      !WriteFile(html_path, ReportHtml(config, result, summary, grading ? &grade : nullptr))) {
    std::cerr << "hermod-bench: cannot write " << html_path << "\n";
  }
  int rc = summary.connects_ok == 0 ? 1 : 0;
  if (const std::string refused = RefusedReason(result.stats); !refused.empty()) {
    std::cerr << "hermod-bench: the server refused the publisher, run stopped: " << refused << "\n";
    if (rc == 0) rc = 5;
  }
  if (grading && rc == 0 && grade.worst > 1.0) {
    std::cerr << "hermod-bench: grade " << grade.grade << ": the SLO is not met\n";
    rc = 4;
  }
  if (!compare_path.empty()) {
    std::map<std::string, double> new_figures;
    std::string json = ReportJson(config, result, summary, nullptr);
    ReadSummaryFigures(json, new_figures, &error);
    Comparison cmp = CompareFigures(old_figures, new_figures, tolerance);
    std::printf("%s", FormatComparison(cmp).c_str());
    if (cmp.regression && rc == 0) rc = 3;
  }
  return rc;
}
