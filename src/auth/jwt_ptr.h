// An owning pointer to a libjwt token, for the signer and the verifier.
#pragma once

#include <jwt.h>

#include <memory>

namespace hermod::auth {

struct JwtFree {
  void operator()(jwt_t* jwt) const { jwt_free(jwt); }
};
using JwtPtr = std::unique_ptr<jwt_t, JwtFree>;

}  // namespace hermod::auth
