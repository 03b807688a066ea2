#include "net/mailbox.h"

#include <gtest/gtest.h>
#include <poll.h>

#include <chrono>
#include <future>
#include <thread>
#include <vector>

#include "net/event_loop.h"

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

TEST(Mailbox, QuietPostsRunOnRunPostedWithoutWaking) {
  Mailbox mailbox;
  std::vector<int> order;
  mailbox.PostQuiet([&order] { order.push_back(0); });
  mailbox.Post([&order] { order.push_back(1); });  // not the empty -> non-empty edge
  mailbox.PostQuiet([&order] { order.push_back(2); });
  pollfd p{mailbox.fd(), POLLIN, 0};
  EXPECT_EQ(poll(&p, 1, 0), 0);
  EXPECT_EQ(mailbox.wakes(), 0u);
  mailbox.RunPosted();
  EXPECT_EQ(order, (std::vector<int>{0, 1, 2}));
}

// A publication fanned out to the publisher's own loop is a task the loop posts to itself:
// it runs in the next iteration, in post order with the others, with no eventfd write; a
// task that keeps posting itself does not keep the loop from its events.
TEST(LoopPost, TasksALoopPostsToItselfRunWithoutAWakeUp) {
  Loop loop(0, 4096);
  std::thread thread([&loop] { loop.Run(); });
  std::promise<void> started;
  loop.Post([&started] { started.set_value(); });
  started.get_future().wait();
  const uint64_t before = loop.mailbox().wakes();
  std::vector<int> order;
  std::promise<void> done;
  loop.Post([&] {
    for (int i = 0; i < 100; ++i) loop.Post([&order, i] { order.push_back(i); });
    loop.Post([&done] { done.set_value(); });
  });
  done.get_future().wait();
  // The outer post came from this thread: one wake-up at most, none for the 101 inner ones.
  EXPECT_LE(loop.mailbox().wakes() - before, 1u);
  std::vector<int> expected(100);
  for (int i = 0; i < 100; ++i) expected[i] = i;
  EXPECT_EQ(order, expected);

  // A task that reposts itself runs once per iteration: a post from another thread still
  // gets in and stops it (were the loop to run its own posts until none is left, it would
  // never wait on its eventfd again).
  bool stop = false;
  std::promise<void> spinning;
  std::promise<void> stopped;
  std::function<void()> spin = [&] {
    if (stop) {
      stopped.set_value();
      return;
    }
    loop.Post(spin);
  };
  loop.Post([&] {
    loop.Post(spin);
    spinning.set_value();
  });
  spinning.get_future().wait();
  loop.Post([&stop] { stop = true; });
  EXPECT_EQ(stopped.get_future().wait_for(std::chrono::seconds(10)), std::future_status::ready);
  loop.Post([&loop] { loop.Stop(); });
  thread.join();
}

}  // namespace
}  // namespace hermod::net
