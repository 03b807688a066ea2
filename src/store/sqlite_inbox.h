// The `sqlite` inbox engine: the memory engine's state (store/memory_inbox.h), each change
// also written to the engine's SQLite file (store/sqlite_store.h) by its one writer thread,
// in the same group-committed transactions as history, so an inbox costs no connection and
// no thread of its own. What a call changed is durable when its `stored` is called (after
// the COMMIT): the API answers a publish, and a client its ack, only then. Delivery counts
// are written without waiting (a count lost to kill -9 means one more delivery, never a lost
// publication); a publication to a watched inbox is stored with its first delivery counted,
// in its own row's write (a kill -9 before it is sent then counts one delivery too many).
// At start-up every inbox row is read back into memory.
#pragma once

#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "store/memory_inbox.h"
#include "store/sqlite_store.h"

namespace hermod::store {

class SqliteInboxStore final : public MemoryInboxStore {
 public:
  // Creates the tables if needed and loads them; nullptr with *error when it cannot.
  static std::unique_ptr<SqliteInboxStore> Open(std::shared_ptr<SqliteEngine> engine,
                                                std::string* error);
  ~SqliteInboxStore() override;
  const char* name() const override { return "sqlite"; }
  bool durable() const override { return true; }

  struct Statements;

 protected:
  std::optional<bool> Persist(std::vector<Write>& writes, core::InboxStored& stored) override;
  bool journaled() const override { return true; }
  bool state_writes_data() const override { return false; }  // an UPDATE of the state only
  // Open restores each top as the highest of inbox_meta's and the rows' offsets: one row
  // write fewer per publication.
  bool top_with_each_append() const override { return false; }

 private:
  explicit SqliteInboxStore(std::shared_ptr<SqliteEngine> engine);
  std::shared_ptr<SqliteEngine> engine_;
  std::shared_ptr<Statements> stmts_;
};

}  // namespace hermod::store
