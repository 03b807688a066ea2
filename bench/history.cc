// The history scenario (history.h). Wire (hermod), publishers and API readers over HTTP/1.1
// keep-alive, client readers over WebSocket:
//   fill:   POST /api/publish {"channel":"hbhist<k>","data":{"hh":[k,s],"p":"xx.."}}
//           <- 200 {"result":{"offset":O,"epoch":"E"}}
//   window: POST /api/history {"channel":"hbhist<k>","limit":1}
//           <- 200 {"result":{"publications":[{.."offset":F}],"epoch":"E","offset":T}}
//   read (client): -> {"id":1,"connect":{"name":"hermod-bench"}}  <- {"id":1,"connect":{..}}
//           -> {"id":N,"history":{"channel":..,"limit":L,"since":{"offset":S,"epoch":"E"}}}
//           <- {"id":N,"history":{"publications":[..],"epoch":"E","offset":T}}
//   read (api): POST /api/history {"channel":..,"limit":L,"since":{"offset":S,"epoch":"E"}}
//           <- 200 {"result":{"publications":[..],"epoch":"E","offset":T}}
//
// NATS JetStream alone (-p nats), everything over nats-server's WebSocket listener: the floor
// for reading L messages from JetStream, one direct get per message with its sequence known.
//   control: PUB $JS.API.STREAM.DELETE/CREATE.HBHIST (subjects hist.>, max_msgs_per_subject
//            N, allow_direct) with a reply subject
//   fill:    PUB hist.<k> _P.<i> {"hh":[k,s],..}  <- MSG _P.<i> {"stream":"HBHIST","seq":Q}
//            (a channel's offsets are its messages in sequence order, 1..N)
//   read:    PUB $JS.API.DIRECT.GET.HBHIST _R.<i>.<j> {"seq":Q} for the L messages after
//            since, written at once  <- HMSG _R.<i>.<j> (Nats-Subject, Nats-Sequence) payload
#include "history.h"

#include <simdjson.h>
#include <sys/epoll.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <charconv>
#include <cstdint>
#include <cstdio>
#include <fstream>
#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "api_client.h"
#include "clock.h"
#include "histogram.h"
#include "interrupt.h"
#include "proc_sampler.h"

namespace hermod::bench {

namespace {

// Any 16 bytes in base64 do: the key only lets the client check that the server upgraded.
constexpr std::string_view kWsKey = "aGVybW9kLWJlbmNoLWhpcw==";

// The stamp [channel, fill sequence] of a payload {"hh":[k,s],..}.
bool ParseStamp(std::string_view text, uint64_t* k, uint64_t* seq) {
  const size_t p = text.find("\"hh\":[");
  if (p == std::string_view::npos) return false;
  const char* end = text.data() + text.size();
  auto r1 = std::from_chars(text.data() + p + 6, end, *k);
  if (r1.ec != std::errc() || r1.ptr >= end || *r1.ptr != ',') return false;
  return std::from_chars(r1.ptr + 1, end, *seq).ec == std::errc();
}

enum class Kind : uint8_t { kControl, kPublisher, kReader };
constexpr std::string_view kStream = "HBHIST";
enum class Phase : uint8_t { kFill, kWindow, kRead };

struct Channel {
  std::string name;
  std::string epoch;
  // What the reads may ask for: the offsets this fill stored that the stream still keeps.
  uint64_t first = 0;
  uint64_t top = 0;  // the stream's top offset (the window's read)
  // The offsets this fill's publishes were answered with (a reused channel keeps older ones).
  uint64_t first_published = UINT64_MAX;
  uint64_t top_published = 0;
  std::unordered_map<uint64_t, uint64_t> seq_at;  // offset -> the fill sequence stored there
  // JetStream: (stream sequence, fill sequence) of each fill message; then by offset - 1,
  // the stream sequence of each.
  std::vector<std::pair<uint64_t, uint64_t>> stored;
  std::vector<uint64_t> stream_seq;
};

// What a connection's one request in flight asked, to check its answer against.
struct Request {
  uint32_t channel = 0;
  uint64_t since = 0;
  uint64_t expect = 0;  // publications the answer must hold
  uint64_t seq = 0;     // fill: the sequence published
  uint64_t sent_ns = 0;
  uint64_t id = 0;  // client command id
};

struct Runner;

struct Conn final : public ApiConn {
  Conn(Runner& r, Kind k, uint32_t i);
  void OnMessage(ws::Opcode opcode, std::string_view payload) override;

  Runner& runner;
  const Kind kind;
  const uint32_t index;
  bool busy = false;
  Request request;
  uint64_t next_id = 2;
  // JetStream: the answers of the read in flight so far, and the first thing wrong in them.
  uint64_t got = 0;
  std::string bad;
};

struct Runner final : public ApiClient {
  const HistoryOptions& o;
  std::vector<Channel> channels;
  std::vector<std::unique_ptr<Conn>> publishers;
  std::vector<std::unique_ptr<Conn>> readers;
  std::string padding;
  simdjson::dom::parser parser;
  Phase phase = Phase::kFill;
  uint64_t next_job = 0;  // fill: the next publication; window: the next channel
  uint64_t jobs_done = 0;
  uint64_t readers_ready = 0;
  bool failed_setup = false;
  // reads
  uint64_t issued = 0;
  uint64_t answered = 0;
  uint64_t reads_ok = 0;  // answered and checked right
  uint64_t wrong = 0;     // answered, but not what the fill stored
  uint64_t failed = 0;    // an error answer, or the connection lost with the read in flight
  uint64_t publications_read = 0;
  uint64_t bytes_read = 0;
  uint64_t measure_start = 0;
  uint64_t last_answer_ns = 0;
  double server_cpu_s = -1;
  Histogram latency;  // request sent → answer checked, right answers only

  const bool nats;
  std::unique_ptr<Conn> control;

  Runner(const RunConfig& c, const HistoryOptions& opt)
      : ApiClient(c, c.protocol == Protocol::kNats ? ws::Opcode::kBinary : ws::Opcode::kText,
                  opt.api_key),
        o(opt),
        nats(c.protocol == Protocol::kNats) {}

  // A connection lost: in the setup the run fails; a read in flight counts as failed.
  void Fail(ApiConn& conn, const std::string& reason) override {
    Conn& c = static_cast<Conn&>(conn);
    Error(reason);
    if (phase != Phase::kRead || !c.ready) failed_setup = true;
    if (phase == Phase::kRead && c.kind == Kind::kReader && c.busy) {
      c.busy = false;
      ++answered;
      ++failed;
    }
    Close(c);
  }

  void OnUpgraded(ApiConn& c) override {
    if (nats) return NatsOpen(static_cast<Conn&>(c));
    SendWs(c, "{\"id\":1,\"connect\":{\"name\":\"hermod-bench\"}}");
  }

  void OnHttpAnswer(ApiConn& conn, std::string_view head, std::string_view body) override {
    Conn& c = static_cast<Conn&>(conn);
    c.busy = false;
    const bool ok = head.starts_with("HTTP/1.1 200");
    OnApiAnswer(c, ok ? std::string() : std::string(head.substr(0, head.find("\r\n"))),
                std::string(body));
  }

  // ---- the answers ----

  // An API answer (status empty: 200).
  void OnApiAnswer(Conn& c, const std::string& status, const std::string& body) {
    simdjson::dom::element doc, result;
    std::string why = status;
    if (why.empty() && parser.parse(body.data(), body.size(), true).get(doc) != simdjson::SUCCESS) {
      why = "an answer that is not JSON";
    }
    if (why.empty() && doc["result"].get(result) != simdjson::SUCCESS) why = "error";
    if (!why.empty()) why += ": " + body.substr(0, 120);
    switch (phase) {
      case Phase::kFill:
        return Filled(c, why, result);
      case Phase::kWindow:
        return Windowed(c, why, result);
      case Phase::kRead:
        return Answered(c, why, result, body.size());
    }
  }

  void OnClientLine(Conn& c, std::string_view line) {
    if (line.empty()) return;
    if (line == "{}") return SendWs(c, "{}");
    simdjson::dom::element doc, reply;
    uint64_t id = 0;
    if (parser.parse(line.data(), line.size(), true).get(doc) != simdjson::SUCCESS ||
        doc["id"].get(id) != simdjson::SUCCESS) {
      return;  // a push
    }
    std::string why;
    if (doc["error"].error() == simdjson::SUCCESS)
      why = "error: " + std::string(line.substr(0, 120));
    if (id == 1) {
      if (!why.empty()) return Fail(c, "connect: " + why + " (anonymous connect allowed?)");
      c.ready = true;
      ++readers_ready;
      return;
    }
    if (!c.busy || id != c.request.id) return Error("a reply to no request in flight");
    c.busy = false;
    if (why.empty() && doc["history"].get(reply) != simdjson::SUCCESS) why = "not a history reply";
    Answered(c, why, reply, line.size());
  }

  void Filled(Conn& c, const std::string& why, simdjson::dom::element result) {
    Channel& ch = channels[c.request.channel];
    uint64_t offset = 0;
    std::string_view epoch;
    if (!why.empty()) return Fail(c, "fill: publish to " + ch.name + ": " + why);
    if (result["offset"].get(offset) != simdjson::SUCCESS ||
        result["epoch"].get(epoch) != simdjson::SUCCESS) {
      return Fail(c,
                  "fill: a publish answered without offset and epoch (history_size, "
                  "history_ttl set?)");
    }
    if (!ch.epoch.empty() && ch.epoch != epoch) return Fail(c, "fill: the epoch changed");
    ch.epoch = epoch;
    if (!ch.seq_at.emplace(offset, c.request.seq).second) {
      return Fail(c, "fill: two publications answered with one offset");
    }
    ch.top_published = std::max(ch.top_published, offset);
    ch.first_published = std::min(ch.first_published, offset);
    ++jobs_done;
  }

  void Windowed(Conn& c, const std::string& why, simdjson::dom::element result) {
    Channel& ch = channels[c.request.channel];
    simdjson::dom::array pubs;
    std::string_view epoch;
    if (!why.empty()) return Fail(c, "window: history of " + ch.name + ": " + why);
    if (result["publications"].get(pubs) != simdjson::SUCCESS || pubs.size() != 1 ||
        pubs.at(0)["offset"].get(ch.first) != simdjson::SUCCESS ||
        result["offset"].get(ch.top) != simdjson::SUCCESS ||
        result["epoch"].get(epoch) != simdjson::SUCCESS) {
      return Fail(c, "window: " + ch.name + " keeps no publication");
    }
    // Reads stay within what this fill stored: a channel used before keeps older ones.
    ch.first = std::max(ch.first, ch.first_published);
    if (epoch != ch.epoch || ch.top != ch.top_published || ch.first == 0 || ch.first > ch.top ||
        !ch.seq_at.contains(ch.first)) {
      return Fail(c, "window: " + ch.name + " does not hold what the fill stored (epoch or " +
                         "offsets " + std::to_string(ch.first) + ".." + std::to_string(ch.top) +
                         ")");
    }
    ++jobs_done;
  }

  // Empty when result is exactly what the fill stored after request.since; else what differs.
  std::string Check(const Request& r, simdjson::dom::element result) {
    const Channel& ch = channels[r.channel];
    simdjson::dom::array pubs;
    std::string_view epoch;
    uint64_t top = 0;
    if (result["publications"].get(pubs) != simdjson::SUCCESS) return "no publications";
    if (result["epoch"].get(epoch) != simdjson::SUCCESS || epoch != ch.epoch) return "epoch";
    if (result["offset"].get(top) != simdjson::SUCCESS || top != ch.top) return "top offset";
    uint64_t n = 0;
    for (simdjson::dom::element p : pubs) {
      uint64_t offset = 0, k = 0, seq = 0;
      simdjson::dom::array stamp;
      if (p["offset"].get(offset) != simdjson::SUCCESS || offset != r.since + 1 + n) {
        return "offset " + std::to_string(offset) + " where " + std::to_string(r.since + 1 + n) +
               " was due";
      }
      const auto stored = ch.seq_at.find(offset);
      if (p["data"]["hh"].get(stamp) != simdjson::SUCCESS ||
          stamp.at(0).get(k) != simdjson::SUCCESS || stamp.at(1).get(seq) != simdjson::SUCCESS ||
          k != r.channel || stored == ch.seq_at.end() || stored->second != seq) {
        return "the publication at offset " + std::to_string(offset) + " is not the one stored";
      }
      ++n;
    }
    if (n != r.expect) {
      return std::to_string(n) + " publications where " + std::to_string(r.expect) + " were due";
    }
    return {};
  }

  void Answered(Conn& c, const std::string& why, simdjson::dom::element result, size_t bytes) {
    const uint64_t now = NowNs();
    ++answered;
    last_answer_ns = now;
    if (!why.empty()) {
      ++failed;
      return Error("history: " + why);
    }
    const std::string wrong_why = Check(c.request, result);
    if (!wrong_why.empty()) {
      ++wrong;
      return Error("wrong answer: " + wrong_why);
    }
    ++reads_ok;
    publications_read += c.request.expect;
    bytes_read += bytes;
    latency.Record(now - c.request.sent_ns);
  }

  // ---- the requests ----

  void Job(Conn& c) {
    c.busy = true;
    const uint64_t job = next_job++;
    if (phase == Phase::kFill) {
      const uint32_t k = static_cast<uint32_t>(job % o.channels);
      c.request.channel = k;
      c.request.seq = job / o.channels;
      if (nats) {
        const std::string data = "{\"hh\":[" + std::to_string(k) + "," +
                                 std::to_string(c.request.seq) + "],\"p\":\"" + padding + "\"}";
        return SendWs(c, "PUB hist." + std::to_string(k) + " _P." + std::to_string(c.index) + " " +
                             std::to_string(data.size()) + "\r\n" + data + "\r\n");
      }
      Post(c, "publish",
           "{\"channel\":\"" + channels[k].name + "\",\"data\":{\"hh\":[" + std::to_string(k) +
               "," + std::to_string(c.request.seq) + "],\"p\":\"" + padding + "\"}}");
    } else {
      c.request.channel = static_cast<uint32_t>(job);
      Post(c, "history", "{\"channel\":\"" + channels[job].name + "\",\"limit\":1}");
    }
  }

  // One read: a random channel, since a random offset of its window that leaves limit
  // publications after it (all of the window when it is shorter).
  void Read(Conn& c, uint64_t now) {
    Request& r = c.request;
    r.channel = static_cast<uint32_t>(rng() % channels.size());
    const Channel& ch = channels[r.channel];
    const uint64_t window = ch.top - ch.first + 1;
    r.expect = std::min<uint64_t>(o.limit, window);
    r.since = ch.first - 1 + rng() % (window - r.expect + 1);
    r.sent_ns = now;
    c.busy = true;
    ++issued;
    if (nats) return NatsRead(c);
    const std::string args =
        "\"channel\":\"" + ch.name + "\",\"limit\":" + std::to_string(o.limit) +
        ",\"since\":{\"offset\":" + std::to_string(r.since) + ",\"epoch\":\"" + ch.epoch + "\"}";
    if (o.api) return Post(c, "history", "{" + args + "}");
    r.id = c.next_id++;
    SendWs(c, "{\"id\":" + std::to_string(r.id) + ",\"history\":{" + args + "}}");
  }

  // ---- NATS JetStream ----

  void NatsOpen(Conn& c) {
    std::string out = NatsConnect(true);
    if (c.kind == Kind::kControl) {
      const std::string create =
          "{\"name\":\"" + std::string(kStream) +
          "\",\"subjects\":[\"hist.>\"],\"retention\":\"limits\",\"storage\":\"file\","
          "\"max_msgs_per_subject\":" +
          std::to_string(o.fill) + ",\"allow_direct\":true,\"discard\":\"old\",\"num_replicas\":1}";
      out += NatsRecreateStream(kStream, create);
    } else if (c.kind == Kind::kPublisher) {
      out += "SUB _P." + std::to_string(c.index) + " 1\r\nPING\r\n";
    } else {
      out += "SUB _R." + std::to_string(c.index) + ".* 1\r\nPING\r\n";
    }
    SendWs(c, out);
  }

  // A channel's offsets are its messages in stream order; the stream keeps them all (a fresh
  // stream with max_msgs_per_subject N holds the N of the fill).
  void NatsWindows() {
    for (Channel& ch : channels) {
      std::sort(ch.stored.begin(), ch.stored.end());
      for (size_t i = 0; i < ch.stored.size(); ++i) {
        ch.seq_at[i + 1] = ch.stored[i].second;
        ch.stream_seq.push_back(ch.stored[i].first);
      }
      ch.first = 1;
      ch.top = ch.stored.size();
    }
  }

  void NatsRead(Conn& c) {
    const Request& r = c.request;
    const Channel& ch = channels[r.channel];
    c.got = 0;
    c.bad.clear();
    std::string out;
    for (uint64_t j = 0; j < r.expect; ++j) {
      const std::string body = "{\"seq\":" + std::to_string(ch.stream_seq[r.since + j]) + "}";
      out += "PUB $JS.API.DIRECT.GET." + std::string(kStream) + " _R." + std::to_string(c.index) +
             "." + std::to_string(j) + " " + std::to_string(body.size()) + "\r\n" + body + "\r\n";
    }
    SendWs(c, out);
  }

  void OnNatsPong(ApiConn& conn) override {
    Conn& c = static_cast<Conn&>(conn);
    if (!c.ready && c.kind == Kind::kReader) ++readers_ready;
    c.ready = true;
  }

  // The value of header `name` in a NATS header block, empty if absent.
  static std::string_view HeaderValue(std::string_view headers, std::string_view name) {
    const size_t p = headers.find(std::string("\r\n") + std::string(name) + ":");
    if (p == std::string_view::npos) return {};
    size_t v = p + name.size() + 3;
    while (v < headers.size() && headers[v] == ' ') ++v;
    return headers.substr(v, headers.find("\r\n", v) - v);
  }

  void OnNatsMsg(ApiConn& conn, std::string_view subject, std::string_view,
                 std::string_view headers, std::string_view payload) override {
    Conn& c = static_cast<Conn&>(conn);
    if (c.kind == Kind::kControl) return OnStreamReply(c, payload);
    if (c.kind == Kind::kPublisher) {
      c.busy = false;
      Channel& ch = channels[c.request.channel];
      const size_t at = payload.find("\"seq\":");
      if (payload.find("\"error\"") != std::string_view::npos || at == std::string_view::npos) {
        return Fail(c, "fill: publish: " + std::string(payload.substr(0, 160)));
      }
      ch.stored.emplace_back(ParseU64(payload, at + 6), c.request.seq);
      ++jobs_done;
      return;
    }
    if (!c.busy) return Error("a direct get answer to no read in flight");
    const Request& r = c.request;
    const uint64_t j = ParseU64(subject, subject.rfind('.') + 1);
    const uint64_t offset = r.since + 1 + j;
    const Channel& ch = channels[r.channel];
    const auto stored = ch.seq_at.find(offset);
    uint64_t k = 0, seq = 0;
    if (c.bad.empty()) {
      if (!headers.starts_with("NATS/1.0\r\n")) {
        c.bad = "a direct get answered " + std::string(headers.substr(0, headers.find('\r')));
      } else if (j >= r.expect ||
                 ParseU64(HeaderValue(headers, "Nats-Sequence"), 0) != ch.stream_seq[offset - 1] ||
                 HeaderValue(headers, "Nats-Subject") != "hist." + std::to_string(r.channel)) {
        c.bad = "the message at offset " + std::to_string(offset) + " is not the one stored";
      } else if (!ParseStamp(payload, &k, &seq) || k != r.channel || stored == ch.seq_at.end() ||
                 stored->second != seq) {
        c.bad = "the message at offset " + std::to_string(offset) + " holds another's data";
      }
    }
    if (++c.got < r.expect) return;
    c.busy = false;
    const uint64_t now = NowNs();
    ++answered;
    last_answer_ns = now;
    if (!c.bad.empty()) {
      ++wrong;
      return Error("wrong answer: " + c.bad);
    }
    ++reads_ok;
    publications_read += r.expect;
    bytes_read += r.expect * payload.size();
    latency.Record(now - r.sent_ns);
  }

  // ---- the run ----
  bool RunJobs(Phase p, uint64_t total, uint64_t deadline) {
    phase = p;
    next_job = 0;
    jobs_done = 0;
    while (jobs_done < total) {
      if (failed_setup || Interrupted() || NowNs() > deadline) return false;
      for (auto& c : publishers) {
        if (next_job >= total) break;
        if (!c->busy && c->fd >= 0 && c->ready) Job(*c);
      }
      FlushDirty();
      Loop(10);
    }
    return true;
  }

  int Run() {
    epoll_fd = epoll_create1(EPOLL_CLOEXEC);
    if (!Resolve(config.host, config.port, &ws_addr)) return Report(1, "bad -u host");
    if (!ParseApiUrl(o.api_url)) return Report(1, "bad --api-url");
    // The data is {"hh":[k,s],"p":"x.."}: padded to about config.size bytes.
    padding.assign(config.size > 24 ? config.size - 24 : 0, 'x');
    channels.resize(o.channels);
    for (uint32_t k = 0; k < o.channels; ++k) channels[k].name = o.prefix + std::to_string(k);
    const uint64_t setup_deadline = NowNs() + static_cast<uint64_t>(config.setup_timeout_s * 1e9);
    if (nats) {
      control = std::make_unique<Conn>(*this, Kind::kControl, 0);
      control->websocket = true;
      if (!Open(*control, ws_addr)) return Report(1, "setup: connect failed");
      FlushDirty();
      while (!control->ready) {
        if (failed_setup || Interrupted() || NowNs() > setup_deadline) {
          return Report(1, "setup: the stream was not created");
        }
        Loop(10);
      }
    }
    for (uint32_t k = 0; k < o.publishers; ++k) {
      publishers.push_back(std::make_unique<Conn>(*this, Kind::kPublisher, k));
      publishers.back()->websocket = nats;
      if (!Open(*publishers.back(), nats ? ws_addr : api_addr)) {
        return Report(1, "setup: publisher connect failed");
      }
    }
    if (!RunJobs(Phase::kFill, uint64_t{o.channels} * o.fill, setup_deadline)) {
      return Report(1, "setup: the fill did not complete");
    }
    if (nats) {
      NatsWindows();
    } else if (!RunJobs(Phase::kWindow, o.channels, setup_deadline)) {
      return Report(1, "setup: the channels' windows were not read");
    }
    for (auto& c : publishers) Close(*c);
    for (uint32_t i = 0; i < config.connections; ++i) {
      readers.push_back(std::make_unique<Conn>(*this, Kind::kReader, i));
      Conn& r = *readers.back();
      r.websocket = nats || !o.api;
      if (!Open(r, r.websocket ? ws_addr : api_addr)) {
        return Report(1, "setup: reader connect failed");
      }
      if (!r.websocket) ++readers_ready;
    }
    FlushDirty();
    while (readers_ready < readers.size()) {
      if (failed_setup || Interrupted() || NowNs() > setup_deadline) {
        return Report(1, "setup: readers not connected");
      }
      Loop(10);
    }
    Measure();
    return Report(0, "");
  }

  // Reads (paced when a rate is given) until the count or the time bound; then the answers
  // in flight, for at most drain_s.
  void Measure() {
    phase = Phase::kRead;
    size_t next_reader = 0;
    ProcSampler server(config.server_pid);
    const double cpu_start = config.server_pid > 0 ? server.CpuSeconds() : -1;
    measure_start = NowNs();
    const uint64_t deadline = measure_start + static_cast<uint64_t>(config.duration_s * 1e9);
    uint64_t stop_ns = 0, last_progress = measure_start;
    while (!Interrupted()) {
      const uint64_t now = NowNs();
      const bool stop = now > deadline || (o.reads != 0 && issued >= o.reads);
      // From where the last read went, round the readers: at a low rate the first reader
      // alone would carry every read, and an HTTP connection that never sends a request is
      // closed by the server.
      for (size_t i = 0; i < readers.size(); ++i) {
        if (stop || (o.reads != 0 && issued >= o.reads)) break;
        if (o.rate > 0 && static_cast<double>(issued) >= (now - measure_start) * 1e-9 * o.rate) {
          break;
        }
        Conn& c = *readers[next_reader];
        next_reader = (next_reader + 1) % readers.size();
        if (!c.busy && c.fd >= 0) Read(c, now);
      }
      FlushDirty();
      if (stop && stop_ns == 0) stop_ns = now;
      if (stop && answered == issued) break;
      if (stop_ns != 0 && now > stop_ns + static_cast<uint64_t>(config.drain_s * 1e9)) break;
      if (std::none_of(readers.begin(), readers.end(), [](auto& c) { return c->fd >= 0; })) break;
      if (config.progress && now - last_progress > 1'000'000'000ull) {
        last_progress = now;
        std::fprintf(stderr, "\r%.0f s: reads %llu", (now - measure_start) * 1e-9,
                     static_cast<unsigned long long>(reads_ok));
      }
      Loop(o.rate > 0 ? 1 : 10);
    }
    if (config.progress) std::fprintf(stderr, "\n");
    if (cpu_start >= 0) server_cpu_s = server.CpuSeconds() - cpu_start;
  }

  int Report(int setup_rc, const std::string& what) {
    if (setup_rc != 0 && first_error.empty()) first_error = what;
    const uint64_t end = last_answer_ns != 0 ? last_answer_ns : NowNs();
    const double secs = measure_start != 0 ? std::max(1e-9, (end - measure_start) * 1e-9) : 0;
    const double reads_per_s = secs > 0 ? static_cast<double>(reads_ok) / secs : 0;
    const auto ms = [&](double q) { return latency.ValueAt(q) / 1e6; };
    uint64_t error_count = 0;
    for (auto& [reason, n] : errors) error_count += n;
    uint64_t min_window = 0;
    for (const Channel& ch : channels) {
      const uint64_t w = ch.top >= ch.first && ch.first > 0 ? ch.top - ch.first + 1 : 0;
      min_window = min_window == 0 ? w : std::min(min_window, w);
    }
    const char* via = nats ? "jetstream" : o.api ? "api" : "client";
    if (!o.quiet) {
      std::printf(
          "scenario history via %s url %s: %u channels x %u publications of %u B, limit %u, "
          "%u readers, %.2f s measured\n",
          via, config.url.c_str(), o.channels, o.fill, config.size, o.limit, config.connections,
          secs);
      std::printf("  kept per channel: at least %llu publications\n",
                  static_cast<unsigned long long>(min_window));
      std::printf(
          "  reads checked %llu (%.0f/s)  wrong %llu  failed %llu  publications read %llu "
          "(%.2f MB/s)\n",
          static_cast<unsigned long long>(reads_ok), reads_per_s,
          static_cast<unsigned long long>(wrong), static_cast<unsigned long long>(failed),
          static_cast<unsigned long long>(publications_read),
          secs > 0 ? bytes_read / secs / 1e6 : 0);
      std::printf("  read ms: p50 %.3f  p90 %.3f  p99 %.3f  max %.3f\n", ms(0.5), ms(0.9), ms(0.99),
                  latency.max() / 1e6);
      if (server_cpu_s >= 0 && reads_ok > 0) {
        std::printf("  server cpu %.2f s: %.1f us per read\n", server_cpu_s,
                    server_cpu_s * 1e6 / static_cast<double>(reads_ok));
      }
      std::printf("  errors %llu\n", static_cast<unsigned long long>(error_count));
      for (auto& [reason, n] : errors) {
        std::printf("  error: %s x%llu\n", reason.c_str(), static_cast<unsigned long long>(n));
      }
    }
    if (!o.json_path.empty()) {
      char line[1024];
      std::snprintf(
          line, sizeof(line),
          "{\"scenario\":\"history\",\"via\":\"%s\",\"channels\":%u,\"fill\":%u,\"size\":%u,"
          "\"limit\":%u,\"readers\":%u,\"summary\":{\"measured_s\":%.3f,\"issued\":%llu,"
          "\"reads\":%llu,\"reads_per_s\":%.1f,\"wrong\":%llu,\"failed\":%llu,"
          "\"publications_read\":%llu,\"min_window\":%llu,\"latency_p50_ms\":%.3f,"
          "\"latency_p90_ms\":%.3f,\"latency_p99_ms\":%.3f,\"latency_max_ms\":%.3f,"
          "\"errors\":%llu,\"server_cpu_s\":%.3f}}\n",
          via, o.channels, o.fill, config.size, o.limit, config.connections, secs,
          static_cast<unsigned long long>(issued), static_cast<unsigned long long>(reads_ok),
          reads_per_s, static_cast<unsigned long long>(wrong),
          static_cast<unsigned long long>(failed),
          static_cast<unsigned long long>(publications_read),
          static_cast<unsigned long long>(min_window), ms(0.5), ms(0.9), ms(0.99),
          latency.max() / 1e6, static_cast<unsigned long long>(error_count), server_cpu_s);
      std::ofstream(o.json_path) << line;
    }
    for (auto& c : publishers) Close(*c);
    for (auto& c : readers) Close(*c);
    if (control) Close(*control);
    if (epoll_fd >= 0) close(epoll_fd);
    if (setup_rc != 0) {
      std::fprintf(stderr, "hermod-bench: history: %s\n", first_error.c_str());
      return 1;
    }
    return reads_ok > 0 && wrong == 0 && failed == 0 && error_count == 0 ? 0 : 6;
  }
};

Conn::Conn(Runner& r, Kind k, uint32_t i) : ApiConn(r), runner(r), kind(k), index(i) {
  key = kWsKey;
}

void Conn::OnMessage(ws::Opcode, std::string_view payload) {
  if (runner.nats) return runner.OnNatsMessage(*this, payload);
  size_t pos = 0;
  while (pos < payload.size() && fd >= 0) {
    size_t eol = payload.find('\n', pos);
    if (eol == std::string_view::npos) eol = payload.size();
    runner.OnClientLine(*this, payload.substr(pos, eol - pos));
    pos = eol + 1;
  }
}

}  // namespace

int RunHistory(const RunConfig& config, const HistoryOptions& options) {
  Runner runner(config, options);
  return runner.Run();
}

}  // namespace hermod::bench
