#include "proto/codes.h"

namespace hermod::proto {

std::string_view ErrorMessage(ErrorCode code) {
  switch (code) {
    case ErrorCode::kInternal:
      return "internal server error";
    case ErrorCode::kUnauthorized:
      return "unauthorized";
    case ErrorCode::kUnknownChannel:
      return "unknown channel";
    case ErrorCode::kPermissionDenied:
      return "permission denied";
    case ErrorCode::kMethodNotFound:
      return "method not found";
    case ErrorCode::kAlreadySubscribed:
      return "already subscribed";
    case ErrorCode::kLimitExceeded:
      return "limit exceeded";
    case ErrorCode::kBadRequest:
      return "bad request";
    case ErrorCode::kNotAvailable:
      return "not available";
    case ErrorCode::kTokenExpired:
      return "token expired";
    case ErrorCode::kExpired:
      return "expired";
    case ErrorCode::kTooManyRequests:
      return "too many requests";
    case ErrorCode::kUnrecoverablePosition:
      return "unrecoverable position";
  }
  return "internal server error";
}

}  // namespace hermod::proto
