// cuda_emu.h: run the project's CUDA C kernels (kernels/*.cu, unchanged) on the CPU, for tests.
//
// Part of gpumetrics' test code (tests/cuda_emu). C++20, g++ >= 12. The Python builder (build.py) compiles
//   g++ -std=c++20 -O1 -g -fPIC -shared -pthread -include cuda_emu.h -x c++ <op>.cu + launcher stubs
//
// Execution model
//   * One std::thread per CUDA thread of a block (a pool of blockDim threads is created per launch and reused
//     for every block). Blocks run one after the other; the threads of one block run concurrently,
//     preemptively scheduled by the OS, so races inside a block are real races (TSan sees them).
//   * threadIdx/blockIdx/blockDim/gridDim are thread_local.
//   * __shared__ variables are function-static objects placed in the ELF section "cuda_emu_smem"; since blocks
//     run one at a time they are per block. The section and the dynamic area are filled with 0xFF before every
//     block, so reading shared memory the block did not write gives NaN / 0xFFFF... (poison), as garbage would.
//   * extern __shared__ T x[] (dynamic shared memory): the builder rewrites the declaration to
//     `T* const x = (T*)cuda_emu_dyn_smem_ptr();` (256-byte aligned); under ASan the bytes past the
//     launch's shared_mem are poisoned, so an overrun is reported at its line.
//   * __syncthreads(_count/_and/_or): a block barrier that threads leave when they return (as on hardware,
//     exited threads do not block it). It reports divergent call sites and deadlocks (timeout).
//   * Warp intrinsics (__shfl*_sync, __ballot_sync, __any/__all_sync, __syncwarp, __reduce_*_sync): per-warp
//     rendezvous of exactly the non-exited lanes named in `mask`; mask mismatches, calls by lanes outside
//     their own mask, and reads from non-participating lanes are reported. Values of up to 8 bytes
//     (int, unsigned, long long, unsigned long long, float, double) can be shuffled.
//   * Atomics: std::atomic_ref with relaxed order, as CUDA's (32/64-bit integers, float and double add).
//   * A write past the dynamic shared memory the launch asked for is an error (guard bytes after each block).
//   * Errors (deadlock, misuse, __trap, C++ exception) abort the launch; the launcher returns non-zero with an
//     error text naming file:line.
#pragma once

#include <algorithm>
#include <array>
#include <atomic>
#include <barrier>
#include <bit>
#include <chrono>
#include <climits>
#include <cmath>
#include <condition_variable>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <limits>
#include <list>
#include <memory>
#include <mutex>
#include <source_location>
#include <string>
#include <thread>
#include <tuple>
#include <type_traits>
#include <utility>
#include <vector>

#if defined(__SANITIZE_THREAD__)
// Built with --param=tsan-distinguish-volatile=1 so that volatile accesses (legacy
// warp-synchronous code) are checked; GCC 12's libtsan lacks the volatile entry
// points, so forward them to the plain ones.
extern "C" {
#define CUDA_EMU_TSAN_VOL(N)                                                       \
    void __tsan_read##N(void*);                                                   \
    void __tsan_write##N(void*);                                                  \
    __attribute__((weak)) void __tsan_volatile_read##N(void* p) { __tsan_read##N(p); }   \
    __attribute__((weak)) void __tsan_volatile_write##N(void* p) { __tsan_write##N(p); }
CUDA_EMU_TSAN_VOL(1) CUDA_EMU_TSAN_VOL(2) CUDA_EMU_TSAN_VOL(4) CUDA_EMU_TSAN_VOL(8) CUDA_EMU_TSAN_VOL(16)
#undef CUDA_EMU_TSAN_VOL
}
#endif

#if defined(__SANITIZE_ADDRESS__)
#include <sanitizer/asan_interface.h>
#define CUDA_EMU_ASAN 1
#endif

// ----------------------------------------------------------------------------
// vector / dim types
// ----------------------------------------------------------------------------
struct uint3 { unsigned int x, y, z; };
struct dim3 {
    unsigned int x, y, z;
    constexpr dim3(unsigned int x_ = 1, unsigned int y_ = 1, unsigned int z_ = 1) : x(x_), y(y_), z(z_) {}
    constexpr dim3(uint3 v) : x(v.x), y(v.y), z(v.z) {}
    constexpr operator uint3() const { return uint3{x, y, z}; }
};

#define CUDA_EMU_VEC2(T, N) struct alignas(2 * sizeof(T)) N##2 { T x, y; }; \
    inline N##2 make_##N##2(T x, T y) { return N##2{x, y}; }
#define CUDA_EMU_VEC3(T, N) struct N##3 { T x, y, z; }; \
    inline N##3 make_##N##3(T x, T y, T z) { return N##3{x, y, z}; }
#define CUDA_EMU_VEC4(T, N) struct alignas(4 * sizeof(T) > 16 ? 16 : 4 * sizeof(T)) N##4 { T x, y, z, w; }; \
    inline N##4 make_##N##4(T x, T y, T z, T w) { return N##4{x, y, z, w}; }
CUDA_EMU_VEC2(float, float) CUDA_EMU_VEC3(float, float) CUDA_EMU_VEC4(float, float)
CUDA_EMU_VEC2(double, double) CUDA_EMU_VEC3(double, double) CUDA_EMU_VEC4(double, double)
CUDA_EMU_VEC2(int, int) CUDA_EMU_VEC3(int, int) CUDA_EMU_VEC4(int, int)
CUDA_EMU_VEC2(unsigned int, uint) CUDA_EMU_VEC4(unsigned int, uint)
inline uint3 make_uint3(unsigned x, unsigned y, unsigned z) { return uint3{x, y, z}; }
#undef CUDA_EMU_VEC2
#undef CUDA_EMU_VEC3
#undef CUDA_EMU_VEC4

// ----------------------------------------------------------------------------
// qualifiers
// ----------------------------------------------------------------------------
#define __global__
#define __device__
#define __host__
#define __constant__
#define __managed__
#define __forceinline__ inline __attribute__((always_inline))
#define __noinline__ __attribute__((noinline))
#define __restrict__ __restrict
#define __launch_bounds__(...)
#define __align__(n) alignas(n)
#define __shared__ static __attribute__((section("cuda_emu_smem")))
#define __CUDA_EMU__ 1

#ifndef CUDA_EMU_MAX_DYN_SMEM
#define CUDA_EMU_MAX_DYN_SMEM (228 * 1024)
#endif

extern "C" {
// Target of `extern __shared__` arrays (the builder rewrites them to pointers into it).
alignas(256) unsigned char cuda_emu_dyn_smem[CUDA_EMU_MAX_DYN_SMEM];
// Guarantees that the section exists, so __start_/__stop_ symbols resolve.
__attribute__((section("cuda_emu_smem"), used)) unsigned char cuda_emu_smem_anchor[16];
inline void* cuda_emu_dyn_smem_ptr() { return cuda_emu_dyn_smem; }
extern unsigned char __start_cuda_emu_smem[];
extern unsigned char __stop_cuda_emu_smem[];
}

namespace cuda_emu {

struct KernelAbort {};   // thrown to unwind an emulated thread after a failure

struct Launch;
struct Block;

struct ThreadCtx {
    uint3 tid{0, 0, 0}, bid{0, 0, 0};
    dim3 bdim, gdim;
    unsigned linear = 0;   // linear thread index in block
    unsigned lane = 0, warp = 0;
    Block* blk = nullptr;
    Launch* launch = nullptr;
};
inline thread_local ThreadCtx tls;

[[noreturn]] inline void fail(const std::string& msg);
inline void warn(const std::string& msg);
inline void warn(const std::string& msg, const std::string& key);
inline void note_warp_wait(int delta, const std::source_location& loc);
inline std::string describe_warp_waiters();
inline std::string describe_sync_waiters();

inline std::string where(const std::source_location& l) {
    return std::string(l.file_name()) + ":" + std::to_string(l.line());
}
inline std::string thread_name() {
    char b[96];
    std::snprintf(b, sizeof b, "thread (%u,%u,%u) of block (%u,%u,%u)", tls.tid.x, tls.tid.y, tls.tid.z,
                  tls.bid.x, tls.bid.y, tls.bid.z);
    return b;
}

struct Launch {
    dim3 grid, block;
    size_t dyn_smem = 0;
    unsigned nthreads = 0;
    unsigned long long nblocks = 0;
    std::chrono::milliseconds timeout{30000};
    std::atomic<bool> abort{false};
    bool stop = false;                    // set by the block-start completion only
    unsigned long long next_block = 0;
    std::unique_ptr<Block> blk;
    std::mutex msg_m;
    std::string error;
    std::vector<std::string> warnings;
    std::vector<std::string> warn_keys;
    std::vector<unsigned long long> warn_counts;
};

// Waits on cv until pred() holds; polls for launch abort; fails on timeout.
template <class Pred, class Describe>
void wait_or_fail(std::unique_lock<std::mutex>& lk, std::condition_variable& cv, Pred pred, Describe describe) {
    Launch& L = *tls.launch;
    const auto deadline = std::chrono::steady_clock::now() + L.timeout;
    while (!pred()) {
        if (L.abort.load(std::memory_order_relaxed)) throw KernelAbort{};
        const auto now = std::chrono::steady_clock::now();
        if (now >= deadline) {
            std::string d = describe();
            lk.unlock();
            fail("deadlock/timeout after " + std::to_string(L.timeout.count()) + " ms: " + d);
        }
        cv.wait_until(lk, std::min(deadline, now + std::chrono::milliseconds(20)));
    }
}

// ----------------------------------------------------------------------------
// __syncthreads barrier
// ----------------------------------------------------------------------------
class BlockBarrier {
    std::mutex m_;
    std::condition_variable cv_;
    unsigned expected_;
    unsigned arrived_ = 0;
    unsigned long long gen_ = 0;
    int acc_count_ = 0, acc_and_ = 1, acc_or_ = 0;
    int last_count_ = 0, last_and_ = 1, last_or_ = 0;
    std::source_location first_loc_;
    bool divergence_reported_ = false;

    void complete_() {
        last_count_ = acc_count_; last_and_ = acc_and_; last_or_ = acc_or_;
        acc_count_ = 0; acc_and_ = 1; acc_or_ = 0;
        arrived_ = 0;
        ++gen_;
        cv_.notify_all();
    }

public:
    explicit BlockBarrier(unsigned n) : expected_(n) {}

    struct Result { int count, all, any; };

    std::atomic<int> waiting{0};
    std::atomic<unsigned> wait_line{0};
    std::atomic<const char*> wait_file{""};

    Result arrive_and_wait(int pred, const std::source_location& loc) {
        std::unique_lock lk(m_);
        if (arrived_ == 0) {
            first_loc_ = loc;
        } else if (!divergence_reported_ && (first_loc_.line() != loc.line() ||
                                            std::strcmp(first_loc_.file_name(), loc.file_name()) != 0)) {
            divergence_reported_ = true;
            warn("divergent __syncthreads: " + thread_name() + " waits at " + where(loc) +
                 " while other threads wait at " + where(first_loc_) + " (undefined behaviour in CUDA)");
        }
        const auto my_gen = gen_;
        ++arrived_;
        acc_count_ += pred != 0; acc_and_ &= pred != 0; acc_or_ |= pred != 0;
        if (arrived_ == expected_) {
            complete_();
        } else {
            waiting.fetch_add(1, std::memory_order_relaxed); wait_line.store(loc.line(), std::memory_order_relaxed); wait_file.store(loc.file_name(), std::memory_order_relaxed);
            struct Dec { std::atomic<int>& w; ~Dec() { w.fetch_sub(1, std::memory_order_relaxed); } } dec{waiting};
            wait_or_fail(lk, cv_, [&] { return gen_ != my_gen; }, [&] {
                return "__syncthreads at " + where(loc) + ": " + std::to_string(arrived_) + " of " +
                       std::to_string(expected_) + " live threads arrived (some threads never reach this "
                       "barrier: divergent __syncthreads or a hang in other threads)" + describe_warp_waiters();
            });
        }
        return {last_count_, last_and_, last_or_};
    }

    // A thread returned from the kernel: it no longer takes part.
    void drop() {
        std::lock_guard lk(m_);
        --expected_;
        if (arrived_ > 0 && arrived_ == expected_) complete_();
    }
};

// ----------------------------------------------------------------------------
// warp collectives
// ----------------------------------------------------------------------------
enum class WOp : int { shfl = 1, ballot, any, all, syncwarp, reduce_add, reduce_min, reduce_max };
inline const char* wop_name(WOp o) {
    switch (o) {
        case WOp::shfl: return "__shfl*_sync";
        case WOp::ballot: return "__ballot_sync";
        case WOp::any: return "__any_sync";
        case WOp::all: return "__all_sync";
        case WOp::syncwarp: return "__syncwarp";
        case WOp::reduce_add: return "__reduce_add_sync";
        case WOp::reduce_min: return "__reduce_min_sync";
        case WOp::reduce_max: return "__reduce_max_sync";
    }
    return "?";
}


struct WarpRound {
    uint32_t mask;
    WOp op;
    uint32_t arrived = 0;
    uint32_t leaving = 0;
    bool done = false;
    std::array<uint64_t, 32> slots{};
    std::source_location loc;
};

struct Warp {
    std::mutex m;
    std::condition_variable cv;
    uint32_t live = 0;   // lanes that exist and have not returned
    unsigned index = 0;
    std::list<WarpRound> rounds;

    void try_complete(WarpRound& r) {
        if (!r.done && ((r.mask & live) & ~r.arrived) == 0) {
            r.done = true;
            r.leaving = r.arrived;
            cv.notify_all();
        }
    }

    struct Gathered { std::array<uint64_t, 32> v; uint32_t participants; };

    Gathered gather(uint32_t mask, WOp op, uint64_t value, const std::source_location& loc) {
        const unsigned lane = tls.lane;
        const uint32_t bit = 1u << lane;
        std::unique_lock lk(m);
        if (!(mask & bit)) {
            lk.unlock();
            char b[64];
            std::snprintf(b, sizeof b, "0x%08x", mask);
            fail(std::string(wop_name(op)) + " at " + where(loc) + ": calling lane " + std::to_string(lane) +
                 " is not in mask " + b + " (" + thread_name() + ")");
        }
        WarpRound* r = nullptr;
        for (auto& x : rounds) {
            if (x.done || !(x.mask & mask)) continue;
            if (x.mask != mask || x.op != op) {
                char b[512];
                std::snprintf(b, sizeof b, "warp %u: lane %u calls %s with mask 0x%08x at %s:%u while lanes 0x%08x "
                              "wait in %s with mask 0x%08x at %s:%u", index, lane, wop_name(op), mask,
                              loc.file_name(), (unsigned)loc.line(), x.arrived, wop_name(x.op), x.mask,
                              x.loc.file_name(), (unsigned)x.loc.line());
                std::string s = b;
                lk.unlock();
                fail("mismatched warp collective: " + s);
            }
            r = &x;
            break;
        }
        if (!r) {
            rounds.push_back(WarpRound{mask, op});
            r = &rounds.back();
            r->loc = loc;
        }
        r->slots[lane] = value;
        r->arrived |= bit;
        try_complete(*r);
        note_warp_wait(+1, loc);
        struct Unnote { const std::source_location& l; ~Unnote() { note_warp_wait(-1, l); } } unnote{loc};
        wait_or_fail(lk, cv, [&] { return r->done; }, [&] {
            char b[512];
            std::snprintf(b, sizeof b, "warp %u of block (%u,%u,%u): %s at %s:%u with mask 0x%08x: lanes 0x%08x "
                          "arrived, live lanes 0x%08x named in the mask never arrived (divergence?)", index,
                          tls.bid.x, tls.bid.y, tls.bid.z, wop_name(op), loc.file_name(), (unsigned)loc.line(),
                          mask, r->arrived, (mask & live) & ~r->arrived);
            return std::string(b) + describe_sync_waiters();
        });
        Gathered g{r->slots, r->arrived};
        r->leaving &= ~bit;
        if (r->leaving == 0) {
            for (auto it = rounds.begin(); it != rounds.end(); ++it)
                if (&*it == r) { rounds.erase(it); break; }
        }
        return g;
    }

    void lane_exit(unsigned lane) {
        std::lock_guard lk(m);
        live &= ~(1u << lane);
        for (auto& r : rounds) try_complete(r);
    }
};

struct Block {
    BlockBarrier bar;
    std::vector<std::unique_ptr<Warp>> warps;
    // for deadlock messages: how many threads wait where
    std::atomic<int> warp_waiters{0};
    std::atomic<const char*> warp_wait_file{""};
    std::atomic<unsigned> warp_wait_line{0};
    Block(unsigned nthreads) : bar(nthreads) {
        const unsigned nw = (nthreads + 31) / 32;
        warps.reserve(nw);
        for (unsigned w = 0; w < nw; ++w) {
            auto p = std::make_unique<Warp>();
            p->index = w;
            const unsigned lanes = std::min(32u, nthreads - 32 * w);
            p->live = lanes == 32 ? 0xffffffffu : ((1u << lanes) - 1u);
            warps.push_back(std::move(p));
        }
    }
};

inline void note_warp_wait(int delta, const std::source_location& loc) {
    Block* b = tls.blk;
    if (!b) return;
    if (delta > 0) { b->warp_wait_file.store(loc.file_name(), std::memory_order_relaxed); b->warp_wait_line.store(loc.line(), std::memory_order_relaxed); }
    b->warp_waiters.fetch_add(delta, std::memory_order_relaxed);
}
inline std::string describe_warp_waiters() {
    Block* b = tls.blk;
    int n = b ? b->warp_waiters.load(std::memory_order_relaxed) : 0;
    if (n <= 0) return "";
    return "; meanwhile " + std::to_string(n) + " thread(s) of this block wait in a warp collective, e.g. at " +
           std::string(b->warp_wait_file.load(std::memory_order_relaxed)) + ":" + std::to_string(b->warp_wait_line.load(std::memory_order_relaxed));
}
inline std::string describe_sync_waiters() {
    Block* b = tls.blk;
    int n = b ? b->bar.waiting.load(std::memory_order_relaxed) : 0;
    if (n <= 0) return "";
    return "; meanwhile " + std::to_string(n) + " thread(s) of this block wait in __syncthreads at " +
           std::string(b->bar.wait_file.load(std::memory_order_relaxed)) + ":" + std::to_string(b->bar.wait_line.load(std::memory_order_relaxed));
}

[[noreturn]] inline void fail(const std::string& msg) {
    Launch* L = tls.launch;
    if (L) {
        std::lock_guard lk(L->msg_m);
        if (L->error.empty()) L->error = msg;
        L->abort.store(true);
    }
    throw KernelAbort{};
}

// Warnings are de-duplicated by `key` (e.g. the call site); the first message is
// kept and the number of occurrences appended at the end of the launch.
inline void warn(const std::string& msg, const std::string& key) {
    Launch* L = tls.launch;
    if (!L) { std::fprintf(stderr, "cuda_emu warning: %s\n", msg.c_str()); return; }
    std::lock_guard lk(L->msg_m);
    for (size_t i = 0; i < L->warn_keys.size(); ++i)
        if (L->warn_keys[i] == key) { ++L->warn_counts[i]; return; }
    if (L->warnings.size() < 32) {
        L->warnings.push_back(msg);
        L->warn_keys.push_back(key);
        L->warn_counts.push_back(1);
    }
}
inline void warn(const std::string& msg) { warn(msg, msg); }

template <class T>
inline T poison_value() {
    if constexpr (std::is_floating_point_v<T>) {
        return std::numeric_limits<T>::quiet_NaN();
    } else {
        T v;
        std::memset(&v, 0xA5, sizeof v);
        return v;
    }
}

template <class T>
inline uint64_t to_bits(T v) {
    static_assert(std::is_trivially_copyable_v<T> && sizeof(T) <= 8, "warp shuffle of a type > 8 bytes");
    uint64_t b = 0;
    std::memcpy(&b, &v, sizeof(T));
    return b;
}
template <class T>
inline T from_bits(uint64_t b) {
    T v;
    std::memcpy(&v, &b, sizeof(T));
    return v;
}

enum class ShflKind { idx, up, down, bxor };

template <class T>
inline T shfl(ShflKind kind, uint32_t mask, T var, int arg, int width, const std::source_location& loc) {
    if (width <= 0 || width > 32 || (width & (width - 1))) fail("__shfl*_sync at " + where(loc) + ": width " +
                                                            std::to_string(width) + " is not a power of 2 <= 32");
    Warp& w = *tls.blk->warps[tls.warp];
    auto g = w.gather(mask, WOp::shfl, to_bits(var), loc);
    const int lane = (int)tls.lane;
    const int base = lane & ~(width - 1);
    int src;
    switch (kind) {
        case ShflKind::idx: src = base + (arg & (width - 1)); break;
        case ShflKind::up: src = (lane - base) < arg ? lane : lane - arg; break;
        case ShflKind::down: src = (lane - base) + arg >= width ? lane : lane + arg; break;
        default: src = lane ^ arg; if (src >= base + width) src = lane; break;
    }
    if (src < 0 || src > 31) src = lane;
    if (src == lane) return var;
    if (!(g.participants & (1u << src))) {
        char b[512];
        std::snprintf(b, sizeof b, "__shfl*_sync at %s:%u: lane %d of warp %u reads lane %d which is not taking part "
                      "(exited, absent or not in mask 0x%08x): value is undefined in CUDA, emulator returns poison",
                      loc.file_name(), (unsigned)loc.line(), lane, tls.warp, src, mask);
        warn(b, "shfl-inactive@" + where(loc));
        return poison_value<T>();
    }
    return from_bits<T>(g.v[src]);
}

inline uint32_t vote(WOp op, uint32_t mask, int pred, const std::source_location& loc) {
    Warp& w = *tls.blk->warps[tls.warp];
    auto g = w.gather(mask, op, pred != 0, loc);
    uint32_t ballot = 0;
    for (int l = 0; l < 32; ++l)
        if ((g.participants >> l) & 1u) ballot |= (g.v[l] ? 1u : 0u) << l;
    switch (op) {
        case WOp::ballot: return ballot;
        case WOp::any: return ballot != 0;
        case WOp::all: return ballot == g.participants;
        default: return 0;
    }
}

template <class T>
inline T warp_reduce(WOp op, uint32_t mask, T v, const std::source_location& loc) {
    Warp& w = *tls.blk->warps[tls.warp];
    auto g = w.gather(mask, op, to_bits(v), loc);
    bool first = true;
    T acc{};
    for (int l = 0; l < 32; ++l) {
        if (!((g.participants >> l) & 1u)) continue;
        T x = from_bits<T>(g.v[l]);
        if (first) { acc = x; first = false; continue; }
        if (op == WOp::reduce_add) acc += x;
        else if (op == WOp::reduce_min) acc = x < acc ? x : acc;
        else acc = x > acc ? x : acc;
    }
    return acc;
}

// ----------------------------------------------------------------------------
// launch
// ----------------------------------------------------------------------------
inline std::mutex& launch_mutex() { static std::mutex m; return m; }

inline void poison_shared(size_t dyn) {
    std::memset(__start_cuda_emu_smem, 0xFF, (size_t)(__stop_cuda_emu_smem - __start_cuda_emu_smem));
#ifdef CUDA_EMU_ASAN
    ASAN_UNPOISON_MEMORY_REGION(cuda_emu_dyn_smem, CUDA_EMU_MAX_DYN_SMEM);
#endif
    std::memset(cuda_emu_dyn_smem, 0xFF, std::min<size_t>(dyn + 64, CUDA_EMU_MAX_DYN_SMEM));
#ifdef CUDA_EMU_ASAN
    // Anything past the dynamic size requested at launch is out of bounds.
    ASAN_POISON_MEMORY_REGION(cuda_emu_dyn_smem + dyn, CUDA_EMU_MAX_DYN_SMEM - dyn);
#endif
}

// Bytes just past the dynamic shared memory a launch asked for: poisoned with 0xFF before each block and
// checked after it, so a write past `shared_mem` is an error even without ASan (reads get the poison).
constexpr size_t kSmemCanary = 64;

inline void check_smem_canary(Launch& L) {
#ifndef CUDA_EMU_ASAN  // under ASan the bytes are poisoned and the write itself is reported
    const size_t end = std::min(L.dyn_smem + kSmemCanary, (size_t)CUDA_EMU_MAX_DYN_SMEM);
    for (size_t i = L.dyn_smem; i < end; ++i) {
        if (cuda_emu_dyn_smem[i] != 0xFF) {
            std::lock_guard lk(L.msg_m);
            if (L.error.empty())
                L.error = "out-of-bounds write to dynamic shared memory: byte " + std::to_string(i) +
                          " was written, but the launch asked for shared_mem=" + std::to_string(L.dyn_smem) +
                          " bytes (block " + std::to_string(L.next_block - 1) + ")";
            L.abort.store(true);
            return;
        }
    }
#else
    (void)L;
#endif
}

struct LaunchResult { int status; std::string error; std::vector<std::string> warnings; };

// Block-start rendezvous of the thread pool; the completion (set up the next block) runs under the mutex, so
// every thread sees the new block. A mutex + condvar rather than std::barrier: ThreadSanitizer understands
// pthread primitives but not libstdc++'s futex-based atomic waits, and reported false races through them.
template <class F>
class StartBarrier {
    std::mutex m_;
    std::condition_variable cv_;
    const unsigned n_;
    unsigned arrived_ = 0;
    unsigned long long gen_ = 0;
    F completion_;

public:
    StartBarrier(unsigned n, F completion) : n_(n), completion_(std::move(completion)) {}
    void arrive_and_wait() {
        std::unique_lock lk(m_);
        const auto gen = gen_;
        if (++arrived_ == n_) {
            arrived_ = 0;
            completion_();
            ++gen_;
            cv_.notify_all();
        } else {
            cv_.wait(lk, [&] { return gen_ != gen; });
        }
    }
};

// Runs body() as every thread of every block. body is called with tls set up.
inline LaunchResult run_grid(dim3 grid, dim3 block, size_t dyn_smem, const std::function<void()>& body,
                             long timeout_ms) {
    std::lock_guard guard(launch_mutex());
    Launch L;
    L.grid = grid; L.block = block; L.dyn_smem = dyn_smem;
    L.nthreads = block.x * block.y * block.z;
    L.nblocks = (unsigned long long)grid.x * grid.y * grid.z;
    L.timeout = std::chrono::milliseconds(timeout_ms > 0 ? timeout_ms : 30000);

    auto bad = [](std::string s) { return LaunchResult{1, "invalid launch configuration: " + s, {}}; };
    if (L.nthreads == 0 || L.nblocks == 0) return bad("zero-sized grid or block");
    if (block.x > 1024 || block.y > 1024 || block.z > 64 || L.nthreads > 1024)
        return bad("more than 1024 threads per block (or blockDim.z > 64)");
    if (grid.y > 65535 || grid.z > 65535) return bad("gridDim.y/z > 65535");
    if (dyn_smem > CUDA_EMU_MAX_DYN_SMEM) return bad("dynamic shared memory larger than CUDA_EMU_MAX_DYN_SMEM");

    auto on_block_start = [&L]() noexcept {
        if (L.next_block > 0) check_smem_canary(L);  // the previous block has finished
        if (L.abort.load() || L.next_block >= L.nblocks) { L.stop = true; return; }
        L.blk = std::make_unique<Block>(L.nthreads);
        poison_shared(L.dyn_smem);
        ++L.next_block;
    };
    StartBarrier start(L.nthreads, on_block_start);

    auto thread_main = [&](unsigned t) {
        tls = ThreadCtx{};
        tls.launch = &L;
        tls.bdim = L.block; tls.gdim = L.grid;
        tls.linear = t;
        tls.tid = uint3{t % L.block.x, (t / L.block.x) % L.block.y, t / (L.block.x * L.block.y)};
        tls.lane = t % 32; tls.warp = t / 32;
        for (;;) {
            start.arrive_and_wait();
            if (L.stop) break;
            const unsigned long long b = L.next_block - 1;
            tls.bid = uint3{(unsigned)(b % L.grid.x), (unsigned)((b / L.grid.x) % L.grid.y),
                            (unsigned)(b / ((unsigned long long)L.grid.x * L.grid.y))};
            tls.blk = L.blk.get();
            try {
                body();
            } catch (KernelAbort&) {
            } catch (std::exception& e) {
                try { fail(std::string("C++ exception in kernel: ") + e.what()); } catch (KernelAbort&) {}
            }
            tls.blk->warps[tls.warp]->lane_exit(tls.lane);
            tls.blk->bar.drop();
        }
        tls = ThreadCtx{};
    };

    std::vector<std::thread> pool;
    pool.reserve(L.nthreads);
    try {
        for (unsigned t = 0; t < L.nthreads; ++t) pool.emplace_back(thread_main, t);
    } catch (std::exception& e) {
        // could not create enough threads: let the ones we have finish
        std::fprintf(stderr, "cuda_emu: thread creation failed: %s\n", e.what());
        std::abort();
    }
    for (auto& th : pool) th.join();
    LaunchResult r;
    r.status = L.error.empty() ? 0 : 2;
    r.error = L.error;
    for (size_t i = 0; i < L.warnings.size(); ++i)
        r.warnings.push_back(L.warn_counts[i] > 1 ? L.warnings[i] + " [" + std::to_string(L.warn_counts[i]) +
                                                        " occurrences]" : L.warnings[i]);
    return r;
}

// --- packed-argument launch, the same convention as cuLaunchKernel(kernelParams)
template <class... P, size_t... I>
inline std::function<void()> bind_args(void (*k)(P...), void** args, std::index_sequence<I...>) {
    auto tup = std::make_shared<std::tuple<std::decay_t<P>...>>(
        *static_cast<std::decay_t<P>*>(args[I])...);
    return [k, tup]() { std::apply(k, *tup); };
}

// Type code of one parameter: "i4", "u8", "f4", "b1", "P:f4" (pointer to float), "P:S2" (pointer to a 2-byte
// struct such as gm_half), "P:*" (void*)
template <class T>
inline std::string type_code() {
    using U = std::remove_cv_t<T>;
    if constexpr (std::is_pointer_v<U>) {
        using E = std::remove_cv_t<std::remove_pointer_t<U>>;
        if constexpr (std::is_void_v<E>) return "P:*";
        else if constexpr (!std::is_arithmetic_v<E>) return "P:S" + std::to_string(sizeof(E));
        else return "P:" + type_code<E>();
    } else if constexpr (std::is_same_v<U, bool>) {
        return "b1";
    } else if constexpr (std::is_floating_point_v<U>) {
        return "f" + std::to_string(sizeof(U));
    } else if constexpr (std::is_integral_v<U>) {
        return (std::is_signed_v<U> ? "i" : "u") + std::to_string(sizeof(U));
    } else {
        return "S" + std::to_string(sizeof(U));
    }
}

template <class... P>
inline const char* signature(void (*)(P...)) {
    static const std::string s = [] {
        std::string r;
        ((r += type_code<P>() + ","), ...);
        if (!r.empty()) r.pop_back();
        return r;
    }();
    return s.c_str();
}

template <class... P>
inline int launch_packed(void (*k)(P...), const unsigned* g, const unsigned* b, size_t smem, void** args,
                         long timeout_ms, char* err, size_t errlen) {
    auto body = bind_args(k, args, std::index_sequence_for<P...>{});
    LaunchResult r = run_grid(dim3(g[0], g[1], g[2]), dim3(b[0], b[1], b[2]), smem, body, timeout_ms);
    std::string text = r.error;
    for (auto& w : r.warnings) text += (text.empty() ? "" : "\n") + ("warning: " + w);
    if (err && errlen) {
        std::strncpy(err, text.c_str(), errlen - 1);
        err[errlen - 1] = 0;
    }
    return r.status;
}

// C++-side convenience: cuda_emu::launch(kernel, grid, block, smem, args...)
template <class... P, class... A>
inline LaunchResult launch(void (*k)(P...), dim3 grid, dim3 block, size_t smem, A&&... a) {
    auto tup = std::make_shared<std::tuple<std::decay_t<P>...>>(std::forward<A>(a)...);
    return run_grid(grid, block, smem, [k, tup]() { std::apply(k, *tup); }, 30000);
}

}  // namespace cuda_emu

// ----------------------------------------------------------------------------
// CUDA built-ins
// ----------------------------------------------------------------------------
#define threadIdx (static_cast<const uint3&>(::cuda_emu::tls.tid))
#define blockIdx (static_cast<const uint3&>(::cuda_emu::tls.bid))
#define blockDim (static_cast<const dim3&>(::cuda_emu::tls.bdim))
#define gridDim (static_cast<const dim3&>(::cuda_emu::tls.gdim))
#define warpSize 32

inline void __syncthreads(std::source_location l = std::source_location::current()) {
    ::cuda_emu::tls.blk->bar.arrive_and_wait(1, l);
}
inline int __syncthreads_count(int p, std::source_location l = std::source_location::current()) {
    return ::cuda_emu::tls.blk->bar.arrive_and_wait(p, l).count;
}
inline int __syncthreads_and(int p, std::source_location l = std::source_location::current()) {
    return ::cuda_emu::tls.blk->bar.arrive_and_wait(p, l).all;
}
inline int __syncthreads_or(int p, std::source_location l = std::source_location::current()) {
    return ::cuda_emu::tls.blk->bar.arrive_and_wait(p, l).any;
}
inline void __syncwarp(unsigned mask = 0xffffffffu, std::source_location l = std::source_location::current()) {
    ::cuda_emu::tls.blk->warps[::cuda_emu::tls.warp]->gather(mask, ::cuda_emu::WOp::syncwarp, 0, l);
}
inline void __threadfence() { std::atomic_thread_fence(std::memory_order_seq_cst); }
inline void __threadfence_block() { std::atomic_thread_fence(std::memory_order_seq_cst); }
inline void __threadfence_system() { std::atomic_thread_fence(std::memory_order_seq_cst); }
[[noreturn]] inline void __trap() { ::cuda_emu::fail("__trap() called by " + ::cuda_emu::thread_name()); }
inline unsigned __activemask() {   // approximation: all lanes that have not returned
    return ::cuda_emu::tls.blk->warps[::cuda_emu::tls.warp]->live;
}
inline unsigned __lanemask_lt() { return (1u << ::cuda_emu::tls.lane) - 1u; }
inline long long clock64() { return std::chrono::steady_clock::now().time_since_epoch().count(); }
inline void __nanosleep(unsigned ns) { std::this_thread::sleep_for(std::chrono::nanoseconds(ns)); }

#define CUDA_EMU_SL std::source_location l = std::source_location::current()
template <class T> inline T __shfl_sync(unsigned m, T v, int src, int w = 32, CUDA_EMU_SL) {
    return ::cuda_emu::shfl(::cuda_emu::ShflKind::idx, m, v, src, w, l); }
template <class T> inline T __shfl_up_sync(unsigned m, T v, unsigned d, int w = 32, CUDA_EMU_SL) {
    return ::cuda_emu::shfl(::cuda_emu::ShflKind::up, m, v, (int)d, w, l); }
template <class T> inline T __shfl_down_sync(unsigned m, T v, unsigned d, int w = 32, CUDA_EMU_SL) {
    return ::cuda_emu::shfl(::cuda_emu::ShflKind::down, m, v, (int)d, w, l); }
template <class T> inline T __shfl_xor_sync(unsigned m, T v, int lm, int w = 32, CUDA_EMU_SL) {
    return ::cuda_emu::shfl(::cuda_emu::ShflKind::bxor, m, v, lm, w, l); }
inline unsigned __ballot_sync(unsigned m, int p, CUDA_EMU_SL) { return ::cuda_emu::vote(::cuda_emu::WOp::ballot, m, p, l); }
inline int __any_sync(unsigned m, int p, CUDA_EMU_SL) { return (int)::cuda_emu::vote(::cuda_emu::WOp::any, m, p, l); }
inline int __all_sync(unsigned m, int p, CUDA_EMU_SL) { return (int)::cuda_emu::vote(::cuda_emu::WOp::all, m, p, l); }
inline unsigned __reduce_add_sync(unsigned m, unsigned v, CUDA_EMU_SL) { return ::cuda_emu::warp_reduce(::cuda_emu::WOp::reduce_add, m, v, l); }
inline unsigned __reduce_min_sync(unsigned m, unsigned v, CUDA_EMU_SL) { return ::cuda_emu::warp_reduce(::cuda_emu::WOp::reduce_min, m, v, l); }
inline unsigned __reduce_max_sync(unsigned m, unsigned v, CUDA_EMU_SL) { return ::cuda_emu::warp_reduce(::cuda_emu::WOp::reduce_max, m, v, l); }
inline int __reduce_add_sync(unsigned m, int v, CUDA_EMU_SL) { return ::cuda_emu::warp_reduce(::cuda_emu::WOp::reduce_add, m, v, l); }
inline int __reduce_min_sync(unsigned m, int v, CUDA_EMU_SL) { return ::cuda_emu::warp_reduce(::cuda_emu::WOp::reduce_min, m, v, l); }
inline int __reduce_max_sync(unsigned m, int v, CUDA_EMU_SL) { return ::cuda_emu::warp_reduce(::cuda_emu::WOp::reduce_max, m, v, l); }
#undef CUDA_EMU_SL

// --- atomics: relaxed, as CUDA's atomic*() are (no ordering of other memory accesses). Relaxed is the same
// instruction on x86, and it keeps ThreadSanitizer from inferring a happens-before edge a GPU would not give
// (the emulator's own bookkeeping atomics are relaxed for the same reason), so a missing barrier is a race.
template <class T> using cuda_emu_nd = std::type_identity_t<T>;   // non-deduced: CUDA-like conversions
#define CUDA_EMU_RLX std::memory_order_relaxed
template <class T> inline T atomicAdd(T* a, cuda_emu_nd<T> v) { return std::atomic_ref<T>(*a).fetch_add(v, CUDA_EMU_RLX); }
template <class T> inline T atomicSub(T* a, cuda_emu_nd<T> v) { return std::atomic_ref<T>(*a).fetch_sub(v, CUDA_EMU_RLX); }
template <class T> inline T atomicExch(T* a, cuda_emu_nd<T> v) { return std::atomic_ref<T>(*a).exchange(v, CUDA_EMU_RLX); }
template <class T> inline T atomicAnd(T* a, cuda_emu_nd<T> v) { return std::atomic_ref<T>(*a).fetch_and(v, CUDA_EMU_RLX); }
template <class T> inline T atomicOr(T* a, cuda_emu_nd<T> v) { return std::atomic_ref<T>(*a).fetch_or(v, CUDA_EMU_RLX); }
template <class T> inline T atomicXor(T* a, cuda_emu_nd<T> v) { return std::atomic_ref<T>(*a).fetch_xor(v, CUDA_EMU_RLX); }
template <class T> inline T atomicCAS(T* a, cuda_emu_nd<T> cmp, cuda_emu_nd<T> v) {
    std::atomic_ref<T>(*a).compare_exchange_strong(cmp, v, CUDA_EMU_RLX, CUDA_EMU_RLX);
    return cmp;
}
template <class T, class F> inline T cuda_emu_atomic_update(T* a, F f) {
    std::atomic_ref<T> r(*a);
    T old = r.load(CUDA_EMU_RLX);
    while (!r.compare_exchange_weak(old, f(old), CUDA_EMU_RLX, CUDA_EMU_RLX)) {}
    return old;
}
template <class T> inline T atomicMin(T* a, cuda_emu_nd<T> v) { return cuda_emu_atomic_update(a, [v](T o) { return v < o ? v : o; }); }
template <class T> inline T atomicMax(T* a, cuda_emu_nd<T> v) { return cuda_emu_atomic_update(a, [v](T o) { return v > o ? v : o; }); }
inline unsigned atomicInc(unsigned* a, unsigned v) { return cuda_emu_atomic_update(a, [v](unsigned o) { return o >= v ? 0u : o + 1u; }); }
inline unsigned atomicDec(unsigned* a, unsigned v) { return cuda_emu_atomic_update(a, [v](unsigned o) { return (o == 0u || o > v) ? v : o - 1u; }); }
#define atomicAdd_block atomicAdd
#define atomicAdd_system atomicAdd

// --- math / bit intrinsics -----------------------------------------------------
template <class A, class B> inline auto min(A a, B b) { using C = std::common_type_t<A, B>; return (C)a < (C)b ? (C)a : (C)b; }
template <class A, class B> inline auto max(A a, B b) { using C = std::common_type_t<A, B>; return (C)a > (C)b ? (C)a : (C)b; }
using std::sqrt; using std::exp; using std::log; using std::fabs; using std::floor; using std::ceil; using std::fma;
inline float rsqrtf(float x) { return 1.0f / std::sqrt(x); }
inline double rsqrt(double x) { return 1.0 / std::sqrt(x); }
inline float __expf(float x) { return std::exp(x); }
inline float __logf(float x) { return std::log(x); }
inline float __sinf(float x) { return std::sin(x); }
inline float __cosf(float x) { return std::cos(x); }
inline float __powf(float a, float b) { return std::pow(a, b); }
inline float __fdividef(float a, float b) { return a / b; }
inline float __saturatef(float x) { return x < 0.f ? 0.f : (x > 1.f ? 1.f : x); }
inline float __fmaf_rn(float a, float b, float c) { return std::fma(a, b, c); }
inline float __fadd_rn(float a, float b) { return a + b; }
inline float __fmul_rn(float a, float b) { return a * b; }
inline int __float2int_rn(float x) { return (int)std::nearbyint(x); }
inline int __float2int_rz(float x) { return (int)x; }
inline int __float_as_int(float x) { return std::bit_cast<int>(x); }
inline unsigned __float_as_uint(float x) { return std::bit_cast<unsigned>(x); }
inline float __int_as_float(int x) { return std::bit_cast<float>(x); }
inline float __uint_as_float(unsigned x) { return std::bit_cast<float>(x); }
inline long long __double_as_longlong(double x) { return std::bit_cast<long long>(x); }
inline double __longlong_as_double(long long x) { return std::bit_cast<double>(x); }
inline int __popc(unsigned x) { return std::popcount(x); }
inline int __popcll(unsigned long long x) { return std::popcount(x); }
inline int __clz(unsigned x) { return std::countl_zero(x); }
inline int __clzll(unsigned long long x) { return std::countl_zero(x); }
inline int __ffs(int x) { return x ? std::countr_zero((unsigned)x) + 1 : 0; }
inline int __ffsll(long long x) { return x ? std::countr_zero((unsigned long long)x) + 1 : 0; }
inline unsigned __brev(unsigned x) { unsigned r = 0; for (int i = 0; i < 32; ++i) r |= ((x >> i) & 1u) << (31 - i); return r; }
inline int __mul24(int a, int b) { return a * b; }
inline unsigned __umulhi(unsigned a, unsigned b) { return (unsigned)(((unsigned long long)a * b) >> 32); }
inline unsigned long long __umul64hi(unsigned long long a, unsigned long long b) { return (unsigned long long)(((unsigned __int128)a * b) >> 64); }
template <class T> inline T __ldg(const T* p) { return *p; }
