#include "net/mailbox.h"

#include <sys/eventfd.h>
#include <unistd.h>

#include <cerrno>
#include <cstdint>
#include <system_error>

namespace hermod::net {

Mailbox::Mailbox() : event_fd_(eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC)) {
  if (event_fd_ < 0) throw std::system_error(errno, std::generic_category(), "eventfd");
}

Mailbox::~Mailbox() {
  Node* node = head_.exchange(nullptr);
  while (node != nullptr) {
    Node* next = node->next;
    delete node;
    node = next;
  }
  close(event_fd_);
}

bool Mailbox::Push(Node* node) {
  Node* head = head_.load(std::memory_order_relaxed);
  do {
    node->next = head;
  } while (!head_.compare_exchange_weak(head, node, std::memory_order_release,
                                        std::memory_order_relaxed));
  return head == nullptr;
}

void Mailbox::Post(std::function<void()> task) {
  if (Push(new Node{nullptr, std::move(task)})) {
    wakes_.fetch_add(1, std::memory_order_relaxed);
    uint64_t one = 1;
    [[maybe_unused]] ssize_t n = write(event_fd_, &one, sizeof one);
  }
}

void Mailbox::PostQuiet(std::function<void()> task) { Push(new Node{nullptr, std::move(task)}); }

void Mailbox::Drain() {
  uint64_t count;
  [[maybe_unused]] ssize_t n = read(event_fd_, &count, sizeof count);
  RunPosted();
}

void Mailbox::RunPosted() {
  Node* node = head_.exchange(nullptr, std::memory_order_acquire);
  // The stack holds the newest first; reverse to run tasks in the order they were posted.
  Node* fifo = nullptr;
  while (node != nullptr) {
    Node* next = node->next;
    node->next = fifo;
    fifo = node;
    node = next;
  }
  while (fifo != nullptr) {
    Node* next = fifo->next;
    fifo->task();
    delete fifo;
    fifo = next;
  }
}

}  // namespace hermod::net
