// The `sqlite` schedule store: scheduled publications in a table of the sqlite engine's
// file, written by its writer thread within its transactions (group commit), so that a
// scheduled publication answered is on disk and fires after a restart, clean or kill -9.
// Built by SqliteEngine::Schedules.
#pragma once

#include <functional>
#include <memory>

#include "core/schedule_store.h"

struct sqlite3;

namespace hermod::store {

// write(fn, done): runs fn on the engine's writer thread in a transaction, then done(ok).
using SqliteWriteFn =
    std::function<void(std::function<bool(sqlite3*)> fn, std::function<void(bool)> done)>;
std::unique_ptr<core::ScheduleStore> MakeSqliteSchedules(SqliteWriteFn write);

}  // namespace hermod::store
