// The breaker's wiring into the broker link, on an injected clock: what the NATS engine
// reports (sends, disconnects, reconnects) opens and closes it, and health and /metrics say so.
#include "broker/link.h"

#include <gtest/gtest.h>

#include <string>

namespace hermod::broker {
namespace {

uint64_t now_ms = 0;
uint64_t Clock() { return now_ms; }

using State = core::CircuitBreaker::State;
using metrics::HealthLevel;

Link::Options Options() {
  Link::Options o;
  o.breaker.failure_threshold = 3;
  o.breaker.window_ms = 1000;
  o.breaker.open_ms = 500;
  o.breaker.half_open_trials = 1;
  return o;
}

std::string Render(Link& link) {
  metrics::PrometheusText text;
  link.Render(text);
  return text.text();
}

TEST(BrokerLink, DisconnectAndFailedSendsOpenTheBreakerThenSendsAreSkipped) {
  now_ms = 1000;
  Link link(Options(), &Clock);
  link.OnConnected();
  EXPECT_EQ(link.Health().level, HealthLevel::kHealthy);
  link.OnDisconnected();  // one failure
  ASSERT_TRUE(link.Admit());
  link.OnSent(core::BrokerMessageKind::kPublication, false);
  EXPECT_EQ(link.state(), State::kClosed);
  ASSERT_TRUE(link.Admit());
  link.OnSent(core::BrokerMessageKind::kPublication, false);
  EXPECT_EQ(link.state(), State::kOpen);
  EXPECT_EQ(link.failures(), 2u);

  EXPECT_FALSE(link.Admit());
  EXPECT_FALSE(link.Admit());
  EXPECT_EQ(link.skipped(), 2u);
  const metrics::HealthCheck check = link.Health();
  EXPECT_EQ(check.name, "broker");
  EXPECT_EQ(check.level, HealthLevel::kDegraded);
  EXPECT_NE(check.detail.find("circuit breaker open"), std::string::npos) << check.detail;
  EXPECT_NE(check.detail.find("disconnected"), std::string::npos) << check.detail;
  const std::string text = Render(link);
  EXPECT_NE(text.find("hermod_circuit_breaker_state{name=\"broker\"} 1\n"), std::string::npos);
  EXPECT_NE(text.find("hermod_circuit_breaker_transitions_total{name=\"broker\",to=\"open\"} 1\n"),
            std::string::npos);
  EXPECT_NE(text.find("hermod_broker_connected 0\n"), std::string::npos);
  EXPECT_NE(text.find("hermod_broker_publish_skipped_total 2\n"), std::string::npos);
  EXPECT_NE(text.find("hermod_broker_publish_failures_total 2\n"), std::string::npos);
}

TEST(BrokerLink, AfterOpenTimeoutOneTrialDecides) {
  now_ms = 0;
  Link link(Options(), &Clock);
  link.OnConnected();
  for (int i = 0; i < 3; ++i) {
    ASSERT_TRUE(link.Admit());
    link.OnSent(core::BrokerMessageKind::kPublication, false);
  }
  ASSERT_EQ(link.state(), State::kOpen);
  now_ms = 499;
  EXPECT_FALSE(link.Admit());
  now_ms = 500;
  EXPECT_EQ(link.state(), State::kHalfOpen);
  EXPECT_EQ(link.Health().level, HealthLevel::kDegraded);
  ASSERT_TRUE(link.Admit());   // the one trial
  EXPECT_FALSE(link.Admit());  // bounded: no second while it is out
  link.OnSent(core::BrokerMessageKind::kPublication, false);
  EXPECT_EQ(link.state(), State::kOpen);  // the trial failed: open again, for open_ms

  now_ms = 1000;
  ASSERT_TRUE(link.Admit());
  link.OnSent(core::BrokerMessageKind::kPublication, true);
  EXPECT_EQ(link.state(), State::kClosed);
  EXPECT_EQ(link.Health().level, HealthLevel::kHealthy);
  EXPECT_EQ(link.sent(core::BrokerMessageKind::kPublication), 1u);
  const std::string text = Render(link);
  EXPECT_NE(text.find("{name=\"broker\",to=\"open\"} 2\n"), std::string::npos) << text;
  EXPECT_NE(text.find("{name=\"broker\",to=\"half_open\"} 2\n"), std::string::npos) << text;
  EXPECT_NE(text.find("{name=\"broker\",to=\"closed\"} 1\n"), std::string::npos) << text;
}

TEST(BrokerLink, AnIdleNodeTrialsOnlyWhenConnectedAndHalfOpen) {
  now_ms = 0;
  Link link(Options(), &Clock);
  link.OnConnected();
  EXPECT_FALSE(link.TrialDue());  // closed
  link.OnDisconnected();
  link.OnDisconnected();
  link.OnDisconnected();
  ASSERT_EQ(link.state(), State::kOpen);
  now_ms = 600;
  EXPECT_FALSE(link.TrialDue());  // half-open, but nothing to try against
  link.OnConnected();             // a reconnect is a success: it closes a half-open breaker
  EXPECT_EQ(link.state(), State::kClosed);

  for (int i = 0; i < 3; ++i) link.OnDisconnected();
  link.OnConnected();  // reconnected while open: open_ms still runs
  EXPECT_EQ(link.state(), State::kOpen);
  now_ms = 1200;
  ASSERT_TRUE(link.TrialDue());
  EXPECT_FALSE(link.TrialDue());  // one at a time
  link.OnTrial(true);
  EXPECT_EQ(link.state(), State::kClosed);
}

TEST(BrokerLink, DisconnectedPastTheBoundIsUnhealthy) {
  now_ms = 0;
  Link::Options o = Options();
  o.breaker.failure_threshold = 100;
  o.unhealthy_after_ms = 2000;
  Link link(o, &Clock);
  EXPECT_EQ(link.Health().level, HealthLevel::kDegraded);  // never connected yet
  link.OnConnected();
  now_ms = 10000;
  link.OnDisconnected();
  now_ms = 11999;
  EXPECT_EQ(link.Health().level, HealthLevel::kDegraded);
  now_ms = 12000;
  const metrics::HealthCheck check = link.Health();
  EXPECT_EQ(check.level, HealthLevel::kUnhealthy);
  EXPECT_NE(check.detail.find("disconnected for 2000 ms"), std::string::npos) << check.detail;
  link.OnConnected();
  EXPECT_EQ(link.Health().level, HealthLevel::kHealthy);
}

TEST(BrokerLink, CountsReceivedAndDropped) {
  now_ms = 0;
  Link link(Options(), &Clock);
  link.CountIn(core::BrokerMessageKind::kJoin);
  link.CountIn(core::BrokerMessageKind::kPublication);
  link.CountIn(core::BrokerMessageKind::kPublication);
  link.CountDropped(ReceiveDrop::kDecode);
  const std::string text = Render(link);
  EXPECT_NE(text.find("hermod_broker_messages_total{direction=\"in\",kind=\"publication\"} 2\n"),
            std::string::npos);
  EXPECT_NE(text.find("hermod_broker_messages_total{direction=\"in\",kind=\"join\"} 1\n"),
            std::string::npos);
  EXPECT_NE(text.find("hermod_broker_received_dropped_total{reason=\"decode\"} 1\n"),
            std::string::npos);
}

}  // namespace
}  // namespace hermod::broker
