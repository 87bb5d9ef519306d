/**
 * The libc symbol table and the one `Deno.dlopen` call of the project.
 *
 * Every symbol carries its C prototype. Everything except `poll_wait` is
 * synchronous (it runs on the JS thread), so `errno` can be read right after
 * it returns (see `_errno.ts`). `poll_wait` is the only `nonblocking` symbol.
 * It runs on a worker thread, so only its return value counts, never errno.
 *
 * @module
 */

/** The symbols the project uses, each with its C prototype. */
export const LIBC_SYMBOLS = {
  /** int *__errno_location(void); */
  __errno_location: { parameters: [], result: "pointer" },

  // --- sockets -------------------------------------------------------------
  /** int socket(int domain, int type, int protocol); */
  socket: { parameters: ["i32", "i32", "i32"], result: "i32" },
  /** int bind(int sockfd, const struct sockaddr *addr, socklen_t addrlen); */
  bind: { parameters: ["i32", "buffer", "u32"], result: "i32" },
  /** int listen(int sockfd, int backlog); */
  listen: { parameters: ["i32", "i32"], result: "i32" },
  /** int accept4(int sockfd, struct sockaddr *addr, socklen_t *addrlen, int flags); */
  accept4: { parameters: ["i32", "pointer", "pointer", "i32"], result: "i32" },
  /** int connect(int sockfd, const struct sockaddr *addr, socklen_t addrlen); */
  connect: { parameters: ["i32", "buffer", "u32"], result: "i32" },
  /** int shutdown(int sockfd, int how); */
  shutdown: { parameters: ["i32", "i32"], result: "i32" },
  /** int getsockopt(int sockfd, int level, int optname, void *optval, socklen_t *optlen); */
  getsockopt: { parameters: ["i32", "i32", "i32", "buffer", "buffer"], result: "i32" },
  /** int setsockopt(int sockfd, int level, int optname, const void *optval, socklen_t optlen); */
  setsockopt: { parameters: ["i32", "i32", "i32", "buffer", "u32"], result: "i32" },
  /** int socketpair(int domain, int type, int protocol, int sv[2]); */
  socketpair: { parameters: ["i32", "i32", "i32", "buffer"], result: "i32" },
  /** ssize_t send(int sockfd, const void *buf, size_t len, int flags); (MSG_NOSIGNAL: EPIPE, no SIGPIPE) */
  send: { parameters: ["i32", "buffer", "usize", "i32"], result: "isize" },

  // --- plain fd I/O (used on O_NONBLOCK fds: EAGAIN instead of blocking) ---
  /** ssize_t read(int fd, void *buf, size_t count); */
  read: { parameters: ["i32", "buffer", "usize"], result: "isize" },
  /** ssize_t write(int fd, const void *buf, size_t count); */
  write: { parameters: ["i32", "buffer", "usize"], result: "isize" },
  /** int close(int fd); */
  close: { parameters: ["i32"], result: "i32" },
  /** int eventfd(unsigned int initval, int flags); */
  eventfd: { parameters: ["u32", "i32"], result: "i32" },
  /** int poll(struct pollfd *fds, nfds_t nfds, int timeout); (synchronous: use timeout 0) */
  poll: { parameters: ["buffer", "u64", "i32"], result: "i32" },
  /**
   * int poll(struct pollfd *fds, nfds_t nfds, int timeout); run on a worker
   * thread: the one blocking wait of the data path. Read only the return value
   * and the revents it wrote, never errno.
   */
  poll_wait: {
    name: "poll",
    parameters: ["buffer", "u64", "i32"],
    result: "i32",
    nonblocking: true,
  },

  // --- files and directories -----------------------------------------------
  /** int openat(int dirfd, const char *pathname, int flags, mode_t mode); */
  openat: { parameters: ["i32", "buffer", "i32", "u32"], result: "i32" },
  /** int statx(int dirfd, const char *pathname, int flags, unsigned int mask, struct statx *statxbuf); */
  statx: { parameters: ["i32", "buffer", "i32", "u32", "buffer"], result: "i32" },
  /** int fstatfs(int fd, struct statfs *buf); */
  fstatfs: { parameters: ["i32", "buffer"], result: "i32" },
  /** int mkdirat(int dirfd, const char *pathname, mode_t mode); */
  mkdirat: { parameters: ["i32", "buffer", "u32"], result: "i32" },
  /** int unlinkat(int dirfd, const char *pathname, int flags); */
  unlinkat: { parameters: ["i32", "buffer", "i32"], result: "i32" },
  /** int fchmod(int fd, mode_t mode); */
  fchmod: { parameters: ["i32", "u32"], result: "i32" },
  /** int fchown(int fd, uid_t owner, gid_t group); */
  fchown: { parameters: ["i32", "u32", "u32"], result: "i32" },
  /** int fchmodat(int dirfd, const char *pathname, mode_t mode, int flags); */
  fchmodat: { parameters: ["i32", "buffer", "u32", "i32"], result: "i32" },
  /** int fchownat(int dirfd, const char *pathname, uid_t owner, gid_t group, int flags); */
  fchownat: { parameters: ["i32", "buffer", "u32", "u32", "i32"], result: "i32" },
  /** int flock(int fd, int operation); (always called with LOCK_NB: never blocks the JS thread) */
  flock: { parameters: ["i32", "i32"], result: "i32" },
  /** int fsync(int fd); */
  fsync: { parameters: ["i32"], result: "i32" },

  // --- identity --------------------------------------------------------------
  /** uid_t getuid(void); */
  getuid: { parameters: [], result: "u32" },
  /** uid_t geteuid(void); */
  geteuid: { parameters: [], result: "u32" },
  /** gid_t getgid(void); */
  getgid: { parameters: [], result: "u32" },
  /** gid_t getegid(void); */
  getegid: { parameters: [], result: "u32" },
  /** int getresuid(uid_t *ruid, uid_t *euid, uid_t *suid); */
  getresuid: { parameters: ["buffer", "buffer", "buffer"], result: "i32" },
  /** int getresgid(gid_t *rgid, gid_t *egid, gid_t *sgid); */
  getresgid: { parameters: ["buffer", "buffer", "buffer"], result: "i32" },
  /** pid_t getpid(void); */
  getpid: { parameters: [], result: "i32" },
  /** pid_t getppid(void); */
  getppid: { parameters: [], result: "i32" },

  // --- process state and namespaces ---------------------------------------
  /** int unshare(int flags); */
  unshare: { parameters: ["i32"], result: "i32" },
  /** int mount(const char *source, const char *target, const char *fstype, unsigned long flags, const void *data); */
  mount: { parameters: ["buffer", "buffer", "buffer", "u64", "buffer"], result: "i32" },
  /** int umount2(const char *target, int flags); */
  umount2: { parameters: ["buffer", "i32"], result: "i32" },
  /** int prctl(int option, unsigned long arg2, unsigned long arg3, unsigned long arg4, unsigned long arg5); */
  prctl: { parameters: ["i32", "u64", "u64", "u64", "u64"], result: "i32" },
  /** int getrlimit(int resource, struct rlimit *rlim); */
  getrlimit: { parameters: ["i32", "buffer"], result: "i32" },
  /** int setrlimit(int resource, const struct rlimit *rlim); */
  setrlimit: { parameters: ["i32", "buffer"], result: "i32" },
  /** mode_t umask(mode_t mask); */
  umask: { parameters: ["u32"], result: "u32" },
  /** pid_t setsid(void); */
  setsid: { parameters: [], result: "i32" },
  /** int kill(pid_t pid, int sig); */
  kill: { parameters: ["i32", "i32"], result: "i32" },
} as const satisfies Deno.ForeignLibraryInterface;

/** The opened library. */
export type Libc = Deno.DynamicLibrary<typeof LIBC_SYMBOLS>["symbols"];

/**
 * Absolute paths first, so that the library search path plays no part; the
 * bare soname (resolved through ld.so.cache) is the last resort.
 */
const CANDIDATES: Record<string, string[]> = {
  "x86_64": [
    "/lib/x86_64-linux-gnu/libc.so.6",
    "/usr/lib/x86_64-linux-gnu/libc.so.6",
    "/lib64/libc.so.6",
  ],
  "aarch64": [
    "/lib/aarch64-linux-gnu/libc.so.6",
    "/usr/lib/aarch64-linux-gnu/libc.so.6",
    "/lib64/libc.so.6",
  ],
};

let opened: Libc | undefined;

/**
 * Opens libc once, lazily (importing this module needs no `--allow-ffi`).
 *
 * @throws {Error} on a platform other than Linux x86_64/aarch64.
 */
export function libc(): Libc {
  if (opened) return opened;
  if (Deno.build.os !== "linux") {
    throw new Error(`src/sys supports Linux only, not ${Deno.build.os}`);
  }
  const candidates = [...(CANDIDATES[Deno.build.arch] ?? []), "libc.so.6"];
  let lastError: unknown;
  for (const path of candidates) {
    try {
      opened = Deno.dlopen(path, LIBC_SYMBOLS).symbols;
      return opened;
    } catch (err) {
      lastError = err;
    }
  }
  throw new Error("Cannot open libc", { cause: lastError });
}
