#include "server/ingest/ingest_writer.h"

#include <memory>
#include <string>
#include <vector>

#include "gtest/gtest.h"

namespace rio::ingest {
namespace {

std::vector<EmitItem> Items(int n, size_t payload_bytes) {
  std::vector<EmitItem> items(n);
  for (EmitItem& item : items) {
    item.payload = std::make_shared<const std::string>(payload_bytes, 'x');
  }
  return items;
}

// The queue of emits not yet committed is bounded in events and in payload
// bytes; a submission beyond either bound is refused with a message naming
// both flags, and nothing of it is queued. Not started, so nothing is taken
// from the queue (or written).
TEST(IngestWriter, RefusesSubmissionsBeyondItsQueueBounds) {
  IngestWriter::Options options;
  options.max_queued_events = 3;
  options.max_queued_bytes = 100;
  IngestWriter writer(options, "postgresql://unused", nullptr);
  int called = 0;
  auto done = [&called](absl::StatusOr<std::vector<EmitResult>>) { ++called; };

  // An empty queue takes any one submission, even one over the bounds.
  EXPECT_TRUE(writer.Submit(Items(5, 10), done).ok());
  absl::Status refused = writer.Submit(Items(1, 10), done);
  EXPECT_EQ(refused.code(), absl::StatusCode::kResourceExhausted);
  EXPECT_EQ(refused.message(),
            "too many emits are waiting to be recorded (5 events, 50 payload "
            "bytes; the limits are 3 events (--max_ingest_queue_events) and "
            "100 bytes (--max_ingest_queue_bytes)): retry later");
  EXPECT_EQ(called, 0);
}

TEST(IngestWriter, PayloadBytesAreBoundedToo) {
  IngestWriter::Options options;
  options.max_queued_events = 100;
  options.max_queued_bytes = 100;
  IngestWriter writer(options, "postgresql://unused", nullptr);
  auto done = [](absl::StatusOr<std::vector<EmitResult>>) {};
  EXPECT_TRUE(writer.Submit(Items(1, 60), done).ok());
  EXPECT_TRUE(writer.Submit(Items(1, 40), done).ok());
  EXPECT_EQ(writer.Submit(Items(1, 1), done).code(),
            absl::StatusCode::kResourceExhausted);
}

}  // namespace
}  // namespace rio::ingest
