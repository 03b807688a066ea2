// nats.tls on a libnats connection: every store that connects with libnats (history,
// presence, inbox, schedules) applies it here, so they all reach a TLS nats-server alike,
// and alike with the broker's own client (broker/nats_client.h).
#pragma once

#include <nats/nats.h>

#include <string>

#include "config/config.h"

namespace hermod::store {

// Secure when enabled or a URL is tls:// (libnats also upgrades when the server requires
// it); the CA, client certificate and the name to check when set. Without server_name the
// name checked is the URLs' host when they all share one host name (libnats checks one
// name); an IP address is not checked by name (libnats compares names only), the chain is.
// false with *error naming the key.
bool ApplyNatsTls(natsOptions* o, const std::string& urls, const config::NatsTls& tls,
                  std::string* error);

// The one host name every URL of the comma-separated list has, or "" (several, or an
// address).
std::string NatsCommonHostName(const std::string& urls);

}  // namespace hermod::store
