// Small pieces every integration test uses: starting a receiver inside a
// test, and reading the database with psql.
#ifndef RIO_TESTS_TESTKIT_FIXTURE_H_
#define RIO_TESTS_TESTKIT_FIXTURE_H_

#include <string>

#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"
#include "tests/testkit/testkit.h"

// Starts a testkit::Receiver (or anything with Start() -> absl::Status),
// failing the test if it cannot listen.
#define START_RECEIVER(receiver)                      \
  do {                                                \
    const absl::Status started_ = (receiver).Start(); \
    ASSERT_TRUE(started_.ok()) << started_;           \
  } while (false)

namespace rio::testkit {

// psql output for `sql` against `url`; on error, fails the test and returns
// the error text (which then matches nothing).
inline std::string Sql(const std::string& url, const std::string& sql) {
  auto rows = PgCluster::Query(url, sql);
  EXPECT_TRUE(rows.ok()) << sql << ": " << rows.status();
  return rows.ok() ? *rows : absl::StrCat("<", rows.status().ToString(), ">");
}

}  // namespace rio::testkit

#endif  // RIO_TESTS_TESTKIT_FIXTURE_H_
