// Minimal newlib system calls: stdout and stderr go to the board's serial port.
// No heap: tinygen's firmware does not call malloc, so _sbrk refuses.
#include <errno.h>
#include <sys/stat.h>

#include "tinygen_board.h"

int _write(int fd, const char* buf, int len) {
  if (fd != 1 && fd != 2) {
    errno = EBADF;
    return -1;
  }
  board_serial_write(buf, (size_t)len);
  return len;
}

void* _sbrk(int incr) {
  (void)incr;
  errno = ENOMEM;
  return (void*)-1;
}

int _close(int fd) { (void)fd; return -1; }
int _read(int fd, char* buf, int len) { (void)fd; (void)buf; (void)len; return 0; }
int _lseek(int fd, int off, int whence) { (void)fd; (void)off; (void)whence; return 0; }
int _fstat(int fd, struct stat* st) { (void)fd; st->st_mode = S_IFCHR; return 0; }
int _isatty(int fd) { (void)fd; return 1; }
int _getpid(void) { return 1; }
int _kill(int pid, int sig) { (void)pid; (void)sig; errno = EINVAL; return -1; }
void _exit(int code) { board_exit(code); }

// Linked with -nostartfiles: provide what crti/crtbegin would (static destructors are
// never run, since main does not return into the C library).
void* __dso_handle = 0;
void _init(void) {}
void _fini(void) {}
