#include "store/nats_tls.h"

#include <arpa/inet.h>

#include <string_view>

namespace hermod::store {

namespace {

std::string_view HostOf(std::string_view url) {
  while (!url.empty() && url.front() == ' ') url.remove_prefix(1);
  while (!url.empty() && url.back() == ' ') url.remove_suffix(1);
  if (const size_t scheme = url.find("://"); scheme != std::string_view::npos) {
    url.remove_prefix(scheme + 3);
  }
  url = url.substr(0, url.find('/'));
  if (const size_t at = url.rfind('@'); at != std::string_view::npos) url.remove_prefix(at + 1);
  if (url.starts_with('[')) return {};  // an IPv6 address
  return url.substr(0, url.find(':'));
}

}  // namespace

std::string NatsCommonHostName(const std::string& urls) {
  std::string common;
  std::string_view rest = urls;
  while (true) {
    const size_t comma = rest.find(',');
    const std::string host(HostOf(rest.substr(0, comma)));
    in6_addr address;
    if (host.empty() || inet_pton(AF_INET, host.c_str(), &address) == 1) return "";
    if (!common.empty() && common != host) return "";
    common = host;
    if (comma == std::string_view::npos) return common;
    rest.remove_prefix(comma + 1);
  }
}

bool ApplyNatsTls(natsOptions* o, const std::string& urls, const config::NatsTls& tls,
                  std::string* error) {
  auto fail = [&](natsStatus s, const std::string& key) {
    *error = "config key " + key + ": " + natsStatus_GetText(s);
    const char* last = nats_GetLastError(nullptr);
    if (last != nullptr && *last != '\0') *error += std::string(" (") + last + ")";
    return false;
  };
  const bool wanted = tls.enabled || urls.find("tls://") != std::string::npos;
  const bool configured = !tls.ca_file.empty() || !tls.cert_file.empty() ||
                          !tls.server_name.empty() || tls.insecure_skip_verify;
  // Nothing asked: libnats's options stay as they were (its own upgrade for a server that
  // requires TLS included).
  if (!wanted && !configured) return true;
  natsStatus s = NATS_OK;
  if (wanted && (s = natsOptions_SetSecure(o, true)) != NATS_OK) {
    return fail(s, "nats.tls.enabled");
  }
  if (!tls.ca_file.empty() &&
      (s = natsOptions_LoadCATrustedCertificates(o, tls.ca_file.c_str())) != NATS_OK) {
    return fail(s, "nats.tls.ca_file");
  }
  if (!tls.cert_file.empty() && (s = natsOptions_LoadCertificatesChain(
                                     o, tls.cert_file.c_str(), tls.key_file.c_str())) != NATS_OK) {
    return fail(s, "nats.tls.cert_file");
  }
  const std::string name = tls.server_name.empty() ? NatsCommonHostName(urls) : tls.server_name;
  if (!name.empty() && !tls.insecure_skip_verify &&
      (s = natsOptions_SetExpectedHostname(o, name.c_str())) != NATS_OK) {
    return fail(s, "nats.tls.server_name");
  }
  if (tls.insecure_skip_verify && (s = natsOptions_SkipServerVerification(o, true)) != NATS_OK) {
    return fail(s, "nats.tls.insecure_skip_verify");
  }
  return true;
}

}  // namespace hermod::store
