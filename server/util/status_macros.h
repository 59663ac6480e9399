// Status helpers missing from the Abseil release Rio builds against. Shapes
// follow Abseil HEAD so that an upgrade only swaps the includes.
#ifndef RIO_SERVER_UTIL_STATUS_MACROS_H_
#define RIO_SERVER_UTIL_STATUS_MACROS_H_

#include <utility>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

#define RIO_STATUS_CONCAT_INNER_(a, b) a##b
#define RIO_STATUS_CONCAT_(a, b) RIO_STATUS_CONCAT_INNER_(a, b)

// Returns from the enclosing function when `expr` is not OK.
#define RIO_RETURN_IF_ERROR(expr)              \
  do {                                         \
    ::absl::Status rio_status_ = (expr);       \
    if (!rio_status_.ok()) return rio_status_; \
  } while (0)

// `lhs = *expr`, or returns the error of `expr` from the enclosing function.
#define RIO_ASSIGN_OR_RETURN(lhs, expr)                                        \
  RIO_ASSIGN_OR_RETURN_IMPL_(RIO_STATUS_CONCAT_(rio_statusor_, __LINE__), lhs, \
                             expr)

#define RIO_ASSIGN_OR_RETURN_IMPL_(statusor, lhs, expr)    \
  auto statusor = (expr);                                  \
  if (!statusor.ok()) return std::move(statusor).status(); \
  lhs = std::move(*statusor)

#endif  // RIO_SERVER_UTIL_STATUS_MACROS_H_
