// IntrusiveList: a doubly linked list threaded through its elements (no allocation, O(1)
// insert and erase). It never owns or deletes them: its user erases, then deletes.
#pragma once
#include <cstddef>

namespace l4lb {

template <class T>
class IntrusiveList;

// T derives from ListLinks<T> to be in one IntrusiveList<T> at a time.
template <class T>
class ListLinks {
  friend class IntrusiveList<T>;
  T* prev_ = nullptr;
  T* next_ = nullptr;
};

template <class T>
class IntrusiveList {
 public:
  IntrusiveList() = default;
  IntrusiveList(const IntrusiveList&) = delete;
  IntrusiveList& operator=(const IntrusiveList&) = delete;

  bool empty() const { return head_ == nullptr; }
  size_t size() const { return size_; }
  T* front() const { return head_; }  // the newest (nullptr when empty)
  T* back() const { return tail_; }   // the oldest (nullptr when empty)
  // The element after X (older), or nullptr.
  static T* next(T* x) { return links(x).next_; }

  // Adds X, which is in no list, as the newest.
  void push_front(T* x) {
    links(x).prev_ = nullptr;
    links(x).next_ = head_;
    if (head_) links(head_).prev_ = x;
    else tail_ = x;
    head_ = x;
    ++size_;
  }
  // Unlinks X, which is in this list.
  void erase(T* x) {
    ListLinks<T>& l = links(x);
    if (l.prev_) links(l.prev_).next_ = l.next_;
    else head_ = l.next_;
    if (l.next_) links(l.next_).prev_ = l.prev_;
    else tail_ = l.prev_;
    l.prev_ = l.next_ = nullptr;
    --size_;
  }

 private:
  static ListLinks<T>& links(T* x) { return *x; }
  T* head_ = nullptr;
  T* tail_ = nullptr;
  size_t size_ = 0;
};

}  // namespace l4lb
