// The log buffer between the threads that log and the writer: bounded, drops counted, lines
// whole and in order, and a writer that drains it.
#include "app/log_buffer.h"

#include <gtest/gtest.h>

#include <chrono>
#include <string>
#include <thread>

namespace hermod::app {
namespace {

using std::chrono::milliseconds;

TEST(LogBuffer, KeepsLinesInOrderUpToItsCapacityAndCountsTheLinesDroppedPastIt) {
  LogBuffer buffer(10);
  EXPECT_TRUE(buffer.Append("one\n"));
  EXPECT_TRUE(buffer.Append("two\n"));
  EXPECT_FALSE(buffer.Append("three\n"));  // 8 + 6 bytes would pass 10: dropped whole
  EXPECT_TRUE(buffer.Append("x\n"));       // 10: what still fits is kept
  EXPECT_FALSE(buffer.Append("y\n"));
  EXPECT_EQ(buffer.dropped_total(), 2u);

  std::string lines;
  uint64_t dropped = 0;
  ASSERT_TRUE(buffer.Take(lines, dropped));
  EXPECT_EQ(lines, "one\ntwo\nx\n");
  EXPECT_EQ(dropped, 2u);
  // Taken, the room is free again; the drops are reported once, the total stays.
  EXPECT_TRUE(buffer.Append("three\n"));
  ASSERT_TRUE(buffer.Take(lines, dropped));
  EXPECT_EQ(lines, "three\n");
  EXPECT_EQ(dropped, 0u);
  EXPECT_EQ(buffer.dropped_total(), 2u);
}

TEST(LogBuffer, DropsALineLargerThanItsCapacity) {
  LogBuffer buffer(4);
  EXPECT_FALSE(buffer.Append("12345\n"));
  std::string lines;
  uint64_t dropped = 0;
  ASSERT_TRUE(buffer.Take(lines, dropped));  // wakes for the drop alone, to report it
  EXPECT_EQ(lines, "");
  EXPECT_EQ(dropped, 1u);
}

TEST(LogBuffer, HandsOutWhatIsLeftAfterCloseThenEndsAndRefusesLines) {
  LogBuffer buffer(64);
  EXPECT_TRUE(buffer.Append("last\n"));
  buffer.Close();
  EXPECT_FALSE(buffer.Append("late\n"));
  std::string lines;
  uint64_t dropped = 0;
  ASSERT_TRUE(buffer.Take(lines, dropped));
  EXPECT_EQ(lines, "last\n");
  EXPECT_EQ(dropped, 1u);
  EXPECT_FALSE(buffer.Take(lines, dropped));
}

TEST(LogBuffer, AWriterThreadGetsEveryLineInOrderAndFlushWaitsForIt) {
  constexpr int kLines = 10000;
  LogBuffer buffer(1 << 20);  // room for all: nothing is dropped, so every line must arrive
  std::string out;
  std::thread writer([&] {
    std::string lines;
    uint64_t dropped = 0;
    while (buffer.Take(lines, dropped)) {
      out += lines;
      buffer.MarkWritten(lines.size());
    }
  });
  std::string expected;
  for (int i = 0; i < kLines; ++i) {
    const std::string line = std::to_string(i) + "\n";
    expected += line;
    ASSERT_TRUE(buffer.Append(line));
  }
  EXPECT_TRUE(buffer.WaitWritten(milliseconds(60000)));
  buffer.Close();
  writer.join();
  EXPECT_EQ(out, expected);
  EXPECT_EQ(buffer.dropped_total(), 0u);
}

TEST(LogBuffer, FlushGivesUpAtItsTimeoutWhenNothingIsWritten) {
  LogBuffer buffer(64);
  EXPECT_TRUE(buffer.WaitWritten(milliseconds(0)));  // nothing appended: nothing to wait for
  EXPECT_TRUE(buffer.Append("stuck\n"));
  EXPECT_FALSE(buffer.WaitWritten(milliseconds(1)));
}

}  // namespace
}  // namespace hermod::app
