#include "net/mailbox.h"

#include <gtest/gtest.h>
#include <poll.h>

#include <thread>
#include <vector>

namespace hermod::net {
namespace {

TEST(Mailbox, RunsTasksInPostOrder) {
  Mailbox mailbox;
  std::vector<int> order;
  for (int i = 0; i < 5; ++i) mailbox.Post([&order, i] { order.push_back(i); });
  mailbox.Drain();
  EXPECT_EQ(order, (std::vector<int>{0, 1, 2, 3, 4}));
}

TEST(Mailbox, WakesTheEventFdOnPost) {
  Mailbox mailbox;
  pollfd p{mailbox.fd(), POLLIN, 0};
  EXPECT_EQ(poll(&p, 1, 0), 0);
  mailbox.Post([] {});
  EXPECT_EQ(poll(&p, 1, 0), 1);
  mailbox.Drain();
  p.revents = 0;
  EXPECT_EQ(poll(&p, 1, 0), 0);
}

TEST(Mailbox, ManyProducersLoseNothing) {
  Mailbox mailbox;
  constexpr int kThreads = 4;
  constexpr int kPerThread = 20000;
  long sum = 0;
  int runs = 0;
  std::vector<std::thread> producers;
  for (int t = 0; t < kThreads; ++t) {
    producers.emplace_back([&mailbox, &sum, &runs, t] {
      for (int i = 0; i < kPerThread; ++i) {
        mailbox.Post([&sum, &runs, v = t * kPerThread + i] {
          sum += v;
          ++runs;
        });
      }
    });
  }
  // Consume concurrently, waiting on the eventfd as the loop does.
  while (runs < kThreads * kPerThread) {
    pollfd p{mailbox.fd(), POLLIN, 0};
    poll(&p, 1, 100);
    mailbox.Drain();
  }
  for (auto& p : producers) p.join();
  mailbox.Drain();
  const long n = kThreads * kPerThread;
  EXPECT_EQ(runs, n);
  EXPECT_EQ(sum, n * (n - 1) / 2);
}

}  // namespace
}  // namespace hermod::net
