/*
 * agent9's FUSE binding: libfuse3's low-level API bridged to JavaScript (see docs/fuse-binding.md).
 *
 * Threads: fuse_session_loop_mt runs on a thread of its own (and the worker threads libfuse starts).
 * Each request handler copies what it was given, and the caller (fuse_req_ctx), into a `msg` and posts
 * it to the JS thread through a threadsafe function, without waiting: many requests are in flight at
 * once. JS answers when it is ready, with the reply functions below, called on the JS thread (a reply
 * is a write on /dev/fuse, safe from any thread). The request stays libfuse's until it is answered;
 * JS answers each exactly once (src/fuse/requests.ts sees to it).
 *
 * Lifetimes: a session lives from mount() until destroy(), which JS calls after the loop thread has
 * said it ended (the "exit" message). Requests still unanswered at that point are dropped by JS.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <fuse_lowlevel.h>
#include <node_api.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#define MAX_IO (1024 * 1024)

enum {
  OP_LOOKUP = 1, OP_FORGET, OP_GETATTR, OP_SETATTR, OP_MKDIR, OP_UNLINK, OP_RMDIR, OP_RENAME,
  OP_OPEN, OP_READ, OP_WRITE, OP_FLUSH, OP_RELEASE, OP_FSYNC, OP_OPENDIR, OP_READDIR, OP_RELEASEDIR,
  OP_STATFS, OP_GETXATTR, OP_LISTXATTR, OP_CREATE, OP_INTERRUPT, OP_INIT, OP_EXIT
};

/* Node kinds of a local disk (links, special nodes, fallocate): numbered apart, from 40. */
enum { OP_READLINK = 40, OP_SYMLINK, OP_LINK, OP_MKNOD, OP_FALLOCATE };

/* A kernel cache invalidation waiting to be sent (see notify_thread). */
typedef struct note {
  int entry; /* 0: inode (ino, off, len), 1: entry (ino = parent, name) */
  uint64_t ino;
  int64_t off, len;
  char *name;
  struct note *next;
} note;

typedef struct session {
  struct fuse_session *se;
  napi_threadsafe_function tsfn;
  pthread_t thread;
  int thread_started;
  int unmounted;
  int destroyed;
  /* Invalidations go out from a thread of their own: the kernel may wait, while handling one, for a
     page lock held by a read that waits for the JS thread, so the JS thread must never send them. */
  pthread_t notifier;
  int notifier_started;
  pthread_mutex_t lock;
  pthread_cond_t wake;
  note *head, *tail;
  int stopping;
  /* The process that holds the auto_unmount helper's socket (see guard_auto_unmount); 0: none. */
  pid_t guard;
} session;

typedef struct msg {
  int op;
  fuse_req_t req;
  uint32_t uid, gid, pid, umask;
  uint64_t ino, ino2, fh;
  int64_t off;
  uint64_t size;
  int flags;
  uint32_t mode;
  int interrupted;
  char *name, *name2;
  char *data;
  double attr[8];
  uint64_t rdev, len;
} msg;

static __thread msg *registering;

static msg *new_msg(int op, fuse_req_t req) {
  msg *m = calloc(1, sizeof(msg));
  if (!m) return NULL;
  m->op = op;
  m->req = req;
  if (req) {
    const struct fuse_ctx *ctx = fuse_req_ctx(req);
    m->uid = ctx->uid;
    m->gid = ctx->gid;
    m->pid = ctx->pid;
    m->umask = ctx->umask;
  }
  return m;
}

static void free_msg(msg *m) {
  free(m->name);
  free(m->name2);
  free(m->data);
  free(m);
}

static void post(fuse_req_t req, msg *m) {
  session *s = fuse_req_userdata(req);
  if (!m) {
    fuse_reply_err(req, ENOMEM);
    return;
  }
  if (napi_call_threadsafe_function(s->tsfn, m, napi_tsfn_nonblocking) != napi_ok) {
    free_msg(m);
    fuse_reply_err(req, EIO);
  }
}

static void on_interrupt(fuse_req_t req, void *data) {
  session *s = data;
  if (registering && registering->req == req) {
    registering->interrupted = 1; /* interrupted before it was posted: JS sees the flag */
    return;
  }
  msg *m = calloc(1, sizeof(msg));
  if (!m) return;
  m->op = OP_INTERRUPT;
  m->req = req;
  if (napi_call_threadsafe_function(s->tsfn, m, napi_tsfn_nonblocking) != napi_ok) free(m);
}

/* Requests that may block for long (a stream read, a call's answer) can be interrupted (Ctrl-C). */
static void interruptible(fuse_req_t req, msg *m) {
  registering = m;
  fuse_req_interrupt_func(req, on_interrupt, fuse_req_userdata(req));
  registering = NULL;
}

static char *dup_name(const char *name) { return name ? strdup(name) : NULL; }

/* --- request handlers (libfuse worker threads) -------------------------------------------- */

static void ll_init(void *userdata, struct fuse_conn_info *conn) {
  conn->max_write = MAX_IO;
  conn->max_read = MAX_IO;
  conn->max_readahead = MAX_IO;
  conn->max_background = 64;
  conn->congestion_threshold = 48;
  /* Times are kept to the nanosecond (utimens carries them exactly). */
  conn->time_gran = 1;
  if (conn->capable & FUSE_CAP_ASYNC_READ) conn->want |= FUSE_CAP_ASYNC_READ;
  if (conn->capable & FUSE_CAP_ATOMIC_O_TRUNC) conn->want |= FUSE_CAP_ATOMIC_O_TRUNC;
  if (conn->capable & FUSE_CAP_PARALLEL_DIROPS) conn->want |= FUSE_CAP_PARALLEL_DIROPS;
  /* The kernel drops cached pages itself when a file's mtime or size changes on a getattr. */
  if (conn->capable & FUSE_CAP_AUTO_INVAL_DATA) conn->want |= FUSE_CAP_AUTO_INVAL_DATA;
  conn->want &= ~FUSE_CAP_WRITEBACK_CACHE;
  conn->want &= ~FUSE_CAP_HANDLE_KILLPRIV;
}

static void ll_lookup(fuse_req_t req, fuse_ino_t parent, const char *name) {
  msg *m = new_msg(OP_LOOKUP, req);
  if (m) { m->ino = parent; m->name = dup_name(name); }
  post(req, m);
}

static void post_forget(fuse_req_t req, fuse_ino_t ino, uint64_t nlookup) {
  session *s = fuse_req_userdata(req);
  msg *m = calloc(1, sizeof(msg));
  if (!m) return;
  m->op = OP_FORGET;
  m->ino = ino;
  m->size = nlookup;
  if (napi_call_threadsafe_function(s->tsfn, m, napi_tsfn_nonblocking) != napi_ok) free(m);
}

static void ll_forget(fuse_req_t req, fuse_ino_t ino, uint64_t nlookup) {
  post_forget(req, ino, nlookup);
  fuse_reply_none(req);
}

static void ll_forget_multi(fuse_req_t req, size_t count, struct fuse_forget_data *forgets) {
  for (size_t i = 0; i < count; i++) post_forget(req, forgets[i].ino, forgets[i].nlookup);
  fuse_reply_none(req);
}

static void ll_getattr(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi) {
  msg *m = new_msg(OP_GETATTR, req);
  if (m) { m->ino = ino; m->fh = fi ? fi->fh : 0; }
  post(req, m);
}

static double ts_s(struct timespec t) { return (double)t.tv_sec; }
static double ts_ns(struct timespec t) { return (double)t.tv_nsec; }

static void ll_setattr(fuse_req_t req, fuse_ino_t ino, struct stat *attr, int to_set, struct fuse_file_info *fi) {
  msg *m = new_msg(OP_SETATTR, req);
  if (m) {
    m->ino = ino;
    m->fh = fi ? fi->fh : 0;
    m->flags = to_set;
    m->attr[0] = attr->st_mode;
    m->attr[1] = attr->st_uid;
    m->attr[2] = attr->st_gid;
    m->attr[3] = (double)attr->st_size;
    m->attr[4] = ts_s(attr->st_atim);
    m->attr[5] = ts_ns(attr->st_atim);
    m->attr[6] = ts_s(attr->st_mtim);
    m->attr[7] = ts_ns(attr->st_mtim);
  }
  post(req, m);
}

static void ll_mkdir(fuse_req_t req, fuse_ino_t parent, const char *name, mode_t mode) {
  msg *m = new_msg(OP_MKDIR, req);
  if (m) { m->ino = parent; m->name = dup_name(name); m->mode = mode; }
  post(req, m);
}

static void ll_unlink(fuse_req_t req, fuse_ino_t parent, const char *name) {
  msg *m = new_msg(OP_UNLINK, req);
  if (m) { m->ino = parent; m->name = dup_name(name); }
  post(req, m);
}

static void ll_rmdir(fuse_req_t req, fuse_ino_t parent, const char *name) {
  msg *m = new_msg(OP_RMDIR, req);
  if (m) { m->ino = parent; m->name = dup_name(name); }
  post(req, m);
}

static void ll_rename(fuse_req_t req, fuse_ino_t parent, const char *name, fuse_ino_t newparent, const char *newname,
                      unsigned int flags) {
  msg *m = new_msg(OP_RENAME, req);
  if (m) { m->ino = parent; m->name = dup_name(name); m->ino2 = newparent; m->name2 = dup_name(newname); m->flags = (int)flags; }
  post(req, m);
}

static void ll_open(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi) {
  msg *m = new_msg(OP_OPEN, req);
  if (m) { m->ino = ino; m->flags = fi->flags; }
  post(req, m);
}

static void ll_create(fuse_req_t req, fuse_ino_t parent, const char *name, mode_t mode, struct fuse_file_info *fi) {
  msg *m = new_msg(OP_CREATE, req);
  if (m) { m->ino = parent; m->name = dup_name(name); m->mode = mode; m->flags = fi->flags; }
  post(req, m);
}

static void ll_read(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off, struct fuse_file_info *fi) {
  msg *m = new_msg(OP_READ, req);
  /* fi->flags are the file's flags now (the kernel sends f_flags with each read), so an O_NONBLOCK set
     with fcntl after open reaches us too. */
  if (m) { m->ino = ino; m->size = size; m->off = off; m->fh = fi->fh; m->flags = fi->flags; interruptible(req, m); }
  post(req, m);
}

static void ll_write(fuse_req_t req, fuse_ino_t ino, const char *buf, size_t size, off_t off, struct fuse_file_info *fi) {
  msg *m = new_msg(OP_WRITE, req);
  if (m) {
    m->ino = ino;
    m->size = size;
    m->off = off;
    m->fh = fi->fh;
    /* libfuse's buffer is reused once we return: the bytes travel in a copy JS then owns. */
    m->data = malloc(size ? size : 1);
    if (!m->data) { free_msg(m); m = NULL; }
    else memcpy(m->data, buf, size);
  }
  post(req, m);
}

static void ll_flush(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi) {
  msg *m = new_msg(OP_FLUSH, req);
  if (m) { m->ino = ino; m->fh = fi->fh; interruptible(req, m); }
  post(req, m);
}

static void ll_release(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi) {
  msg *m = new_msg(OP_RELEASE, req);
  if (m) { m->ino = ino; m->fh = fi->fh; }
  post(req, m);
}

static void ll_fsync(fuse_req_t req, fuse_ino_t ino, int datasync, struct fuse_file_info *fi) {
  msg *m = new_msg(OP_FSYNC, req);
  if (m) { m->ino = ino; m->fh = fi->fh; m->flags = datasync; }
  post(req, m);
}

static void ll_opendir(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi) {
  msg *m = new_msg(OP_OPENDIR, req);
  if (m) m->ino = ino;
  post(req, m);
}

static void ll_readdir(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off, struct fuse_file_info *fi) {
  msg *m = new_msg(OP_READDIR, req);
  if (m) { m->ino = ino; m->size = size; m->off = off; m->fh = fi->fh; }
  post(req, m);
}

static void ll_releasedir(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi) {
  msg *m = new_msg(OP_RELEASEDIR, req);
  if (m) { m->ino = ino; m->fh = fi->fh; }
  post(req, m);
}

static void ll_fsyncdir(fuse_req_t req, fuse_ino_t ino, int datasync, struct fuse_file_info *fi) {
  fuse_reply_err(req, 0); /* directory changes are durable when answered */
}

static void ll_statfs(fuse_req_t req, fuse_ino_t ino) {
  msg *m = new_msg(OP_STATFS, req);
  if (m) m->ino = ino;
  post(req, m);
}

static void ll_getxattr(fuse_req_t req, fuse_ino_t ino, const char *name, size_t size) {
  msg *m = new_msg(OP_GETXATTR, req);
  if (m) { m->ino = ino; m->name = dup_name(name); m->size = size; }
  post(req, m);
}

static void ll_listxattr(fuse_req_t req, fuse_ino_t ino, size_t size) {
  msg *m = new_msg(OP_LISTXATTR, req);
  if (m) { m->ino = ino; m->size = size; }
  post(req, m);
}

static void ll_readlink(fuse_req_t req, fuse_ino_t ino) {
  msg *m = new_msg(OP_READLINK, req);
  if (m) m->ino = ino;
  post(req, m);
}

static void ll_symlink(fuse_req_t req, const char *link, fuse_ino_t parent, const char *name) {
  msg *m = new_msg(OP_SYMLINK, req);
  if (m) { m->ino = parent; m->name = dup_name(name); m->name2 = dup_name(link); }
  post(req, m);
}

static void ll_link(fuse_req_t req, fuse_ino_t ino, fuse_ino_t newparent, const char *newname) {
  msg *m = new_msg(OP_LINK, req);
  if (m) { m->ino = ino; m->ino2 = newparent; m->name = dup_name(newname); }
  post(req, m);
}

static void ll_mknod(fuse_req_t req, fuse_ino_t parent, const char *name, mode_t mode, dev_t rdev) {
  msg *m = new_msg(OP_MKNOD, req);
  if (m) { m->ino = parent; m->name = dup_name(name); m->mode = mode; m->rdev = rdev; }
  post(req, m);
}

static void ll_fallocate(fuse_req_t req, fuse_ino_t ino, int mode, off_t offset, off_t length, struct fuse_file_info *fi) {
  msg *m = new_msg(OP_FALLOCATE, req);
  if (m) { m->ino = ino; m->flags = mode; m->off = offset; m->len = (uint64_t)length; m->fh = fi->fh; }
  post(req, m);
}

/* No getlk/setlk/flock: without them libfuse does not offer FUSE_POSIX_LOCKS or FUSE_FLOCK_LOCKS, and
   the kernel keeps POSIX and flock locks itself, for every process on this mount (docs/fuse-binding.md). */
static const struct fuse_lowlevel_ops ll_ops = {
  .readlink = ll_readlink,
  .symlink = ll_symlink,
  .link = ll_link,
  .mknod = ll_mknod,
  .fallocate = ll_fallocate,
  .init = ll_init,
  .lookup = ll_lookup,
  .forget = ll_forget,
  .forget_multi = ll_forget_multi,
  .getattr = ll_getattr,
  .setattr = ll_setattr,
  .mkdir = ll_mkdir,
  .unlink = ll_unlink,
  .rmdir = ll_rmdir,
  .rename = ll_rename,
  .open = ll_open,
  .create = ll_create,
  .read = ll_read,
  .write = ll_write,
  .flush = ll_flush,
  .release = ll_release,
  .fsync = ll_fsync,
  .opendir = ll_opendir,
  .readdir = ll_readdir,
  .releasedir = ll_releasedir,
  .fsyncdir = ll_fsyncdir,
  .statfs = ll_statfs,
  .getxattr = ll_getxattr,
  .listxattr = ll_listxattr,
};

/* --- the JS side of a message --------------------------------------------------------------- */

static napi_value num(napi_env env, double v) {
  napi_value out;
  napi_create_double(env, v, &out);
  return out;
}

static napi_value str(napi_env env, const char *s) {
  napi_value out;
  if (!s) napi_get_undefined(env, &out);
  else napi_create_string_utf8(env, s, NAPI_AUTO_LENGTH, &out);
  return out;
}

static void free_data(napi_env env, void *data, void *hint) { free(data); }

/*
 * The JS handler is called as handler(op, req, uid, gid, pid, ino, a, b, c, d, e); what a..e are depends
 * on the op (src/fuse/binding.ts has the table).
 */
static void call_js(napi_env env, napi_value fn, void *context, void *data) {
  msg *m = data;
  if (!env) { /* tearing down: the request is never answered, the kernel gets ENOTCONN */
    free_msg(m);
    return;
  }
  napi_value argv[11];
  napi_value undef;
  napi_get_undefined(env, &undef);
  for (int i = 0; i < 11; i++) argv[i] = undef;
  argv[0] = num(env, m->op);
  argv[1] = num(env, (double)(uintptr_t)m->req);
  argv[2] = num(env, m->uid);
  argv[3] = num(env, m->gid);
  argv[4] = num(env, m->pid);
  argv[5] = num(env, (double)m->ino);
  switch (m->op) {
    case OP_LOOKUP: case OP_UNLINK: case OP_RMDIR:
      argv[6] = str(env, m->name);
      break;
    case OP_FORGET:
      argv[6] = num(env, (double)m->size);
      break;
    case OP_GETATTR: case OP_RELEASE: case OP_RELEASEDIR:
      argv[6] = num(env, (double)m->fh);
      break;
    case OP_SETATTR: {
      napi_value arr;
      napi_create_array_with_length(env, 8, &arr);
      for (uint32_t i = 0; i < 8; i++) napi_set_element(env, arr, i, num(env, m->attr[i]));
      argv[6] = num(env, m->flags);
      argv[7] = arr;
      argv[8] = num(env, (double)m->fh);
      break;
    }
    case OP_MKDIR:
      argv[6] = str(env, m->name);
      argv[7] = num(env, m->mode);
      argv[8] = num(env, m->umask);
      break;
    case OP_RENAME:
      argv[6] = str(env, m->name);
      argv[7] = num(env, (double)m->ino2);
      argv[8] = str(env, m->name2);
      argv[9] = num(env, m->flags);
      break;
    case OP_OPEN:
      argv[6] = num(env, m->flags);
      break;
    case OP_CREATE:
      argv[6] = str(env, m->name);
      argv[7] = num(env, m->mode);
      argv[8] = num(env, m->flags);
      argv[9] = num(env, m->umask);
      break;
    case OP_READ: case OP_READDIR:
      argv[6] = num(env, (double)m->size);
      argv[7] = num(env, (double)m->off);
      argv[8] = num(env, (double)m->fh);
      argv[9] = num(env, m->interrupted);
      if (m->op == OP_READ) argv[10] = num(env, m->flags);
      break;
    case OP_WRITE: {
      napi_value buf;
      if (napi_create_external_buffer(env, m->size, m->data, free_data, NULL, &buf) == napi_ok) m->data = NULL;
      else napi_create_buffer_copy(env, m->size, m->data, NULL, &buf);
      argv[6] = buf;
      argv[7] = num(env, (double)m->off);
      argv[8] = num(env, (double)m->fh);
      break;
    }
    case OP_FLUSH: case OP_FSYNC:
      argv[6] = num(env, (double)m->fh);
      argv[7] = num(env, m->flags);
      argv[8] = num(env, m->interrupted);
      break;
    case OP_GETXATTR:
      argv[6] = str(env, m->name);
      argv[7] = num(env, (double)m->size);
      break;
    case OP_LISTXATTR:
      argv[6] = num(env, (double)m->size);
      break;
    case OP_SYMLINK:
      argv[6] = str(env, m->name);
      argv[7] = str(env, m->name2);
      break;
    case OP_LINK:
      argv[6] = num(env, (double)m->ino2);
      argv[7] = str(env, m->name);
      break;
    case OP_MKNOD:
      argv[6] = str(env, m->name);
      argv[7] = num(env, m->mode);
      argv[8] = num(env, (double)m->rdev);
      argv[9] = num(env, m->umask);
      break;
    case OP_FALLOCATE:
      argv[6] = num(env, m->flags);
      argv[7] = num(env, (double)m->off);
      argv[8] = num(env, (double)m->len);
      argv[9] = num(env, (double)m->fh);
      break;
    default:
      break;
  }
  free_msg(m);
  napi_value global;
  napi_get_global(env, &global);
  napi_call_function(env, global, fn, 11, argv, NULL);
  /* An exception thrown by the handler is left pending for node to report; the request it was for
     is the JS side's to answer (requests.ts answers EIO when a handler throws). */
}

/* --- the session ---------------------------------------------------------------------------- */

static void *notify_thread(void *arg) {
  session *s = arg;
  pthread_mutex_lock(&s->lock);
  for (;;) {
    while (!s->head && !s->stopping) pthread_cond_wait(&s->wake, &s->lock);
    if (!s->head) break; /* stopping, and nothing left */
    note *n = s->head;
    s->head = n->next;
    if (!s->head) s->tail = NULL;
    int stopping = s->stopping;
    pthread_mutex_unlock(&s->lock);
    if (!stopping) {
      /* ENOENT: the kernel does not have that node or name cached; nothing to drop. */
      if (n->entry) fuse_lowlevel_notify_inval_entry(s->se, n->ino, n->name, strlen(n->name));
      else fuse_lowlevel_notify_inval_inode(s->se, n->ino, n->off, n->len);
    }
    free(n->name);
    free(n);
    pthread_mutex_lock(&s->lock);
  }
  pthread_mutex_unlock(&s->lock);
  return NULL;
}

static int enqueue(session *s, note *n) {
  pthread_mutex_lock(&s->lock);
  int ok = !s->stopping;
  if (ok) {
    if (s->tail) s->tail->next = n;
    else s->head = n;
    s->tail = n;
    pthread_cond_signal(&s->wake);
  }
  pthread_mutex_unlock(&s->lock);
  if (!ok) {
    free(n->name);
    free(n);
  }
  return ok ? 0 : -ENOTCONN;
}

/* Drops what is queued; `join` waits for the thread (only once the session loop has ended: an
   invalidation in the kernel may be waiting for a request only the loop and JS can answer). */
static void stop_notifier(session *s, int join) {
  if (!s->notifier_started) return;
  pthread_mutex_lock(&s->lock);
  s->stopping = 1;
  pthread_cond_signal(&s->wake);
  pthread_mutex_unlock(&s->lock);
  if (!join) return;
  pthread_join(s->notifier, NULL);
  s->notifier_started = 0;
}

static void *loop_thread(void *arg) {
  session *s = arg;
  struct fuse_loop_config *cfg = fuse_loop_cfg_create();
  fuse_loop_cfg_set_max_threads(cfg, 16);
  fuse_loop_cfg_set_idle_threads(cfg, 4);
  fuse_session_loop_mt(s->se, cfg);
  fuse_loop_cfg_destroy(cfg);
  msg *m = calloc(1, sizeof(msg));
  if (m) {
    m->op = OP_EXIT;
    napi_call_threadsafe_function(s->tsfn, m, napi_tsfn_blocking);
  }
  napi_release_threadsafe_function(s->tsfn, napi_tsfn_release);
  return NULL;
}

#define ARGS(n)                                                     \
  size_t argc = n;                                                  \
  napi_value argv[n];                                               \
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);

static napi_value throw_err(napi_env env, const char *text) {
  napi_throw_error(env, NULL, text);
  return NULL;
}

static double get_num(napi_env env, napi_value v) {
  double out = 0;
  napi_get_value_double(env, v, &out);
  return out;
}

static fuse_req_t get_req(napi_env env, napi_value v) { return (fuse_req_t)(uintptr_t)get_num(env, v); }

static session *get_session(napi_env env, napi_value v) {
  session *s = NULL;
  napi_get_value_external(env, v, (void **)&s);
  return s;
}

static void session_finalize(napi_env env, void *data, void *hint) {
  /* Only freed if JS destroyed it: a live session's threads still use it. */
  session *s = data;
  if (s->destroyed) free(s);
}

/*
 * The auto_unmount helper (fusermount3) takes a dead server's mount away when the socket libfuse keeps
 * open to it closes, but only if opening the mount point then fails with ENOTCONN, that is, once the
 * kernel has aborted the connection. A killed process releases that socket and its /dev/fuse
 * descriptor in an order nobody chose: when the socket goes first, the helper's open is queued on the
 * still-live connection, fails with ECONNABORTED when the abort comes, and the helper exits leaving the
 * dead mount behind (seen after SIGKILL under load, about one time in twenty). libfuse also leaves that
 * socket inheritable, so every child of the server (exec programs and what they leave running) holds
 * it too, and a crash leaves the mount for as long as any of them lives.
 *
 * So the socket goes to a guard: a child that holds nothing else, waits on a pidfd until this whole
 * process has exited (every thread, so every file it had, /dev/fuse included, is released by then: the
 * kernel aborts the connection before the process counts as exited) and only then exits, closing the
 * socket. The helper's probe then always sees ENOTCONN. A clean unmount ends the guard (kill_guard).
 */
typedef struct fdlist {
  int *fds;
  size_t n;
} fdlist;

/* The descriptors open in this process (readdir of /proc/self/fd). */
static fdlist open_fds(void) {
  fdlist out = {NULL, 0};
  size_t cap = 0;
  DIR *d = opendir("/proc/self/fd");
  if (!d) return out;
  int self = dirfd(d);
  struct dirent *e;
  while ((e = readdir(d)) != NULL) {
    if (e->d_name[0] < '0' || e->d_name[0] > '9') continue;
    int fd = atoi(e->d_name);
    if (fd == self) continue;
    if (out.n == cap) {
      cap = cap ? cap * 2 : 64;
      int *grown = realloc(out.fds, cap * sizeof(int));
      if (!grown) break;
      out.fds = grown;
    }
    out.fds[out.n++] = fd;
  }
  closedir(d);
  return out;
}

static int in_list(const fdlist *l, int fd) {
  for (size_t i = 0; i < l->n; i++)
    if (l->fds[i] == fd) return 1;
  return 0;
}

/* The socket the mount left open for the helper: new since `before`, a Unix stream socket, and (unlike
   every descriptor Node and libuv make) not close-on-exec. -1 when there is none (no auto_unmount). */
static int helper_socket(const fdlist *before, int device) {
  fdlist after = open_fds();
  int found = -1;
  for (size_t i = 0; i < after.n && found < 0; i++) {
    int fd = after.fds[i];
    if (fd == device || in_list(before, fd)) continue;
    struct stat st;
    int domain = 0, type = 0;
    socklen_t len = sizeof domain;
    if (fstat(fd, &st) != 0 || !S_ISSOCK(st.st_mode)) continue;
    if (getsockopt(fd, SOL_SOCKET, SO_DOMAIN, &domain, &len) != 0 || domain != AF_UNIX) continue;
    len = sizeof type;
    if (getsockopt(fd, SOL_SOCKET, SO_TYPE, &type, &len) != 0 || type != SOCK_STREAM) continue;
    int flags = fcntl(fd, F_GETFD);
    if (flags < 0 || (flags & FD_CLOEXEC)) continue;
    found = fd;
  }
  free(after.fds);
  return found;
}

/* Closes descriptors lo..hi (between fork and _exit: system calls only). */
static void close_span(unsigned int lo, unsigned int hi, long max_fd) {
  if (lo > hi) return;
#ifdef SYS_close_range
  if (syscall(SYS_close_range, lo, hi, 0) == 0) return;
#endif
  for (long fd = lo; fd <= (long)hi && fd <= max_fd; fd++) close((int)fd);
}

/* Closes every descriptor but `a` and `b`. */
static void close_all_but(int a, int b, long max_fd) {
  unsigned int lo = (unsigned int)(a < b ? a : b), hi = (unsigned int)(a < b ? b : a);
  if (lo > 0) close_span(0, lo - 1, max_fd);
  if (hi > lo + 1) close_span(lo + 1, hi - 1, max_fd);
  close_span(hi + 1, ~0U, max_fd);
}

static void guard_auto_unmount(session *s, const fdlist *before) {
  int sock = helper_socket(before, fuse_session_fd(s->se));
  if (sock < 0) return;
#ifdef SYS_pidfd_open
  int pidfd = (int)syscall(SYS_pidfd_open, getpid(), 0);
#else
  int pidfd = -1;
#endif
  long max_fd = sysconf(_SC_OPEN_MAX);
  if (max_fd < 0 || max_fd > 1 << 20) max_fd = 1 << 20;
  pid_t pid = pidfd >= 0 ? fork() : -1;
  if (pid == 0) {
    /* The child of a threaded process: system calls only, until _exit. Its own session, so that a
       Ctrl-C or a signal to the server's process group does not end it before the server. */
    setsid();
    prctl(PR_SET_NAME, "agent9-umount", 0, 0, 0);
    close_all_but(sock, pidfd, max_fd);
    struct pollfd p = {.fd = pidfd, .events = POLLIN, .revents = 0};
    while (poll(&p, 1, -1) < 0 && errno == EINTR) {
    }
    _exit(0);
  }
  if (pid < 0) {
    /* No guard (a kernel without pidfds, or fork failed): at least no child of ours inherits it. */
    fcntl(sock, F_SETFD, FD_CLOEXEC);
  } else {
    close(sock);
    s->guard = pid;
  }
  if (pidfd >= 0) close(pidfd);
}

/* After an unmount: the guard has nothing left to guard. */
static void kill_guard(session *s) {
  if (s->guard <= 0) return;
  kill(s->guard, SIGKILL);
  while (waitpid(s->guard, NULL, 0) < 0 && errno == EINTR) {
  }
  s->guard = 0;
}

/* mount(dir, options, handler) -> session; options is the -o list joined by commas. */
static napi_value js_mount(napi_env env, napi_callback_info info) {
  ARGS(3);
  char dir[4096], opts[4096];
  size_t len;
  if (napi_get_value_string_utf8(env, argv[0], dir, sizeof dir, &len) != napi_ok) return throw_err(env, "mount: bad directory");
  if (napi_get_value_string_utf8(env, argv[1], opts, sizeof opts, &len) != napi_ok) return throw_err(env, "mount: bad options");
  session *s = calloc(1, sizeof(session));
  if (!s) return throw_err(env, "mount: out of memory");
  char *fargv[] = {"agent9", "-o", opts, NULL};
  struct fuse_args args = FUSE_ARGS_INIT(opts[0] ? 3 : 1, fargv);
  s->se = fuse_session_new(&args, &ll_ops, sizeof ll_ops, s);
  if (!s->se) {
    free(s);
    return throw_err(env, "mount: libfuse refused the options (see stderr)");
  }
  fdlist before = open_fds();
  if (fuse_session_mount(s->se, dir) != 0) {
    free(before.fds);
    fuse_session_destroy(s->se);
    free(s);
    return throw_err(env, "mount: the kernel refused the mount (see stderr)");
  }
  guard_auto_unmount(s, &before);
  free(before.fds);
  napi_value name;
  napi_create_string_utf8(env, "agent9-fuse", NAPI_AUTO_LENGTH, &name);
  if (napi_create_threadsafe_function(env, argv[2], NULL, name, 0, 1, NULL, NULL, s, call_js, &s->tsfn) != napi_ok) {
    fuse_session_unmount(s->se);
    kill_guard(s);
    fuse_session_destroy(s->se);
    free(s);
    return throw_err(env, "mount: cannot create the request queue");
  }
  if (pthread_create(&s->thread, NULL, loop_thread, s) != 0) {
    napi_release_threadsafe_function(s->tsfn, napi_tsfn_abort);
    fuse_session_unmount(s->se);
    kill_guard(s);
    fuse_session_destroy(s->se);
    free(s);
    return throw_err(env, "mount: cannot start the session thread");
  }
  s->thread_started = 1;
  pthread_mutex_init(&s->lock, NULL);
  pthread_cond_init(&s->wake, NULL);
  if (pthread_create(&s->notifier, NULL, notify_thread, s) == 0) s->notifier_started = 1;
  napi_value out;
  napi_create_external(env, s, session_finalize, NULL, &out);
  return out;
}

/* unmount(session): ends the loop (it says "exit" to the handler when it has). */
static napi_value js_unmount(napi_env env, napi_callback_info info) {
  ARGS(1);
  session *s = get_session(env, argv[0]);
  if (s && !s->unmounted && !s->destroyed) {
    stop_notifier(s, 0);
    s->unmounted = 1;
    fuse_session_exit(s->se);
    fuse_session_unmount(s->se);
    kill_guard(s);
  }
  return NULL;
}

/* destroy(session): after "exit"; frees the session. */
static napi_value js_destroy(napi_env env, napi_callback_info info) {
  ARGS(1);
  session *s = get_session(env, argv[0]);
  if (!s || s->destroyed) return NULL;
  if (s->thread_started) pthread_join(s->thread, NULL);
  stop_notifier(s, 1);
  if (!s->unmounted) fuse_session_unmount(s->se);
  kill_guard(s);
  fuse_session_destroy(s->se);
  s->destroyed = 1;
  return NULL;
}

/* stat arrays: [ino, mode, nlink, uid, gid, size, blocks, blksize, atime_s, atime_ns, mtime_s, mtime_ns, ctime_s, ctime_ns] */
static void get_stat(napi_env env, napi_value arr, struct stat *st) {
  double v[14] = {0};
  for (uint32_t i = 0; i < 14; i++) {
    napi_value e;
    if (napi_get_element(env, arr, i, &e) == napi_ok) v[i] = get_num(env, e);
  }
  memset(st, 0, sizeof *st);
  st->st_ino = (ino_t)v[0];
  st->st_mode = (mode_t)v[1];
  st->st_nlink = (nlink_t)v[2];
  st->st_uid = (uid_t)v[3];
  st->st_gid = (gid_t)v[4];
  st->st_size = (off_t)v[5];
  st->st_blocks = (blkcnt_t)v[6];
  st->st_blksize = (blksize_t)v[7];
  st->st_atim.tv_sec = (time_t)v[8];
  st->st_atim.tv_nsec = (long)v[9];
  st->st_mtim.tv_sec = (time_t)v[10];
  st->st_mtim.tv_nsec = (long)v[11];
  st->st_ctim.tv_sec = (time_t)v[12];
  st->st_ctim.tv_nsec = (long)v[13];
}

static napi_value ret_int(napi_env env, int v) {
  napi_value out;
  napi_create_int32(env, v, &out);
  return out;
}

/* replyErr(req, errno) */
static napi_value js_reply_err(napi_env env, napi_callback_info info) {
  ARGS(2);
  return ret_int(env, fuse_reply_err(get_req(env, argv[0]), (int)get_num(env, argv[1])));
}

static void fill_entry(napi_env env, napi_value *argv, struct fuse_entry_param *e) {
  memset(e, 0, sizeof *e);
  get_stat(env, argv[0], &e->attr);
  e->ino = e->attr.st_ino;
  e->generation = (uint64_t)get_num(env, argv[1]);
  e->attr_timeout = get_num(env, argv[2]);
  e->entry_timeout = get_num(env, argv[3]);
}

/* replyEntry(req, stat, generation, attrTimeout, entryTimeout); stat undefined/ino 0: a negative entry */
static napi_value js_reply_entry(napi_env env, napi_callback_info info) {
  ARGS(5);
  struct fuse_entry_param e;
  fill_entry(env, argv + 1, &e);
  return ret_int(env, fuse_reply_entry(get_req(env, argv[0]), &e));
}

/* replyAttr(req, stat, attrTimeout) */
static napi_value js_reply_attr(napi_env env, napi_callback_info info) {
  ARGS(3);
  struct stat st;
  get_stat(env, argv[1], &st);
  return ret_int(env, fuse_reply_attr(get_req(env, argv[0]), &st, get_num(env, argv[2])));
}

/* open flags from JS: 1 direct_io, 2 keep_cache, 4 nonseekable */
static void fill_fi(napi_env env, napi_value fh, napi_value flags, struct fuse_file_info *fi) {
  memset(fi, 0, sizeof *fi);
  fi->fh = (uint64_t)get_num(env, fh);
  int f = (int)get_num(env, flags);
  fi->direct_io = (f & 1) != 0;
  fi->keep_cache = (f & 2) != 0;
  fi->nonseekable = (f & 4) != 0;
}

/* replyOpen(req, fh, flags) */
static napi_value js_reply_open(napi_env env, napi_callback_info info) {
  ARGS(3);
  struct fuse_file_info fi;
  fill_fi(env, argv[1], argv[2], &fi);
  return ret_int(env, fuse_reply_open(get_req(env, argv[0]), &fi));
}

/* replyCreate(req, stat, generation, attrTimeout, entryTimeout, fh, flags) */
static napi_value js_reply_create(napi_env env, napi_callback_info info) {
  ARGS(7);
  struct fuse_entry_param e;
  fill_entry(env, argv + 1, &e);
  struct fuse_file_info fi;
  fill_fi(env, argv[5], argv[6], &fi);
  return ret_int(env, fuse_reply_create(get_req(env, argv[0]), &e, &fi));
}

/* replyBuf(req, buffer, length) */
static napi_value js_reply_buf(napi_env env, napi_callback_info info) {
  ARGS(3);
  void *data = NULL;
  size_t len = 0;
  napi_get_buffer_info(env, argv[1], &data, &len);
  size_t n = (size_t)get_num(env, argv[2]);
  if (n > len) n = len;
  return ret_int(env, fuse_reply_buf(get_req(env, argv[0]), data, n));
}

/* replyWrite(req, count) */
static napi_value js_reply_write(napi_env env, napi_callback_info info) {
  ARGS(2);
  return ret_int(env, fuse_reply_write(get_req(env, argv[0]), (size_t)get_num(env, argv[1])));
}

/* replyReadlink(req, target) */
static napi_value js_reply_readlink(napi_env env, napi_callback_info info) {
  ARGS(2);
  size_t len = 0;
  if (napi_get_value_string_utf8(env, argv[1], NULL, 0, &len) != napi_ok) return ret_int(env, fuse_reply_err(get_req(env, argv[0]), EIO));
  char *target = malloc(len + 1);
  if (!target) return ret_int(env, fuse_reply_err(get_req(env, argv[0]), ENOMEM));
  napi_get_value_string_utf8(env, argv[1], target, len + 1, &len);
  int r = fuse_reply_readlink(get_req(env, argv[0]), target);
  free(target);
  return ret_int(env, r);
}

/* replyXattr(req, size): the answer to a size query */
static napi_value js_reply_xattr(napi_env env, napi_callback_info info) {
  ARGS(2);
  return ret_int(env, fuse_reply_xattr(get_req(env, argv[0]), (size_t)get_num(env, argv[1])));
}

/* replyStatfs(req, [bsize, frsize, blocks, bfree, bavail, files, ffree, favail, fsid, flag, namemax]) */
static napi_value js_reply_statfs(napi_env env, napi_callback_info info) {
  ARGS(2);
  double v[11] = {0};
  for (uint32_t i = 0; i < 11; i++) {
    napi_value e;
    if (napi_get_element(env, argv[1], i, &e) == napi_ok) v[i] = get_num(env, e);
  }
  struct statvfs st;
  memset(&st, 0, sizeof st);
  st.f_bsize = (unsigned long)v[0];
  st.f_frsize = (unsigned long)v[1];
  st.f_blocks = (fsblkcnt_t)v[2];
  st.f_bfree = (fsblkcnt_t)v[3];
  st.f_bavail = (fsblkcnt_t)v[4];
  st.f_files = (fsfilcnt_t)v[5];
  st.f_ffree = (fsfilcnt_t)v[6];
  st.f_favail = (fsfilcnt_t)v[7];
  st.f_fsid = (unsigned long)v[8];
  st.f_flag = (unsigned long)v[9];
  st.f_namemax = (unsigned long)v[10];
  return ret_int(env, fuse_reply_statfs(get_req(env, argv[0]), &st));
}

/*
 * replyDir(req, size, names, inos, modes, first): packs entries first.. of the listing into at most
 * `size` bytes (the offset of each is its index + 1) and answers; returns how many fitted.
 */
static napi_value js_reply_dir(napi_env env, napi_callback_info info) {
  ARGS(6);
  fuse_req_t req = get_req(env, argv[0]);
  size_t size = (size_t)get_num(env, argv[1]);
  uint32_t count = 0;
  napi_get_array_length(env, argv[2], &count);
  uint32_t first = (uint32_t)get_num(env, argv[5]);
  char *buf = malloc(size ? size : 1);
  if (!buf) return ret_int(env, fuse_reply_err(req, ENOMEM));
  size_t used = 0;
  uint32_t i;
  for (i = first; i < count; i++) {
    napi_value e;
    char name[1024];
    size_t len = 0;
    napi_get_element(env, argv[2], i, &e);
    if (napi_get_value_string_utf8(env, e, name, sizeof name, &len) != napi_ok) continue;
    struct stat st;
    memset(&st, 0, sizeof st);
    napi_get_element(env, argv[3], i, &e);
    st.st_ino = (ino_t)get_num(env, e);
    napi_get_element(env, argv[4], i, &e);
    st.st_mode = (mode_t)get_num(env, e);
    size_t need = fuse_add_direntry(req, buf + used, size - used, name, &st, (off_t)i + 1);
    if (need > size - used) break;
    used += need;
  }
  fuse_reply_buf(req, buf, used);
  free(buf);
  return ret_int(env, (int)(i - first));
}

/*
 * notifyInvalInode(session, ino, off, len): drop the kernel's cached pages (len 0: all) and attributes
 * of a file. Queued for the notifier thread; returns 0, or -ENOTCONN once the session is ending.
 */
static napi_value js_inval_inode(napi_env env, napi_callback_info info) {
  ARGS(4);
  session *s = get_session(env, argv[0]);
  if (!s || s->destroyed || s->unmounted) return ret_int(env, -ENOTCONN);
  note *n = calloc(1, sizeof(note));
  if (!n) return ret_int(env, -ENOMEM);
  n->ino = (uint64_t)get_num(env, argv[1]);
  n->off = (int64_t)get_num(env, argv[2]);
  n->len = (int64_t)get_num(env, argv[3]);
  return ret_int(env, enqueue(s, n));
}

/* notifyInvalEntry(session, parent, name): drop a cached name (queued like notifyInvalInode) */
static napi_value js_inval_entry(napi_env env, napi_callback_info info) {
  ARGS(3);
  session *s = get_session(env, argv[0]);
  if (!s || s->destroyed || s->unmounted) return ret_int(env, -ENOTCONN);
  char name[1024];
  size_t len = 0;
  if (napi_get_value_string_utf8(env, argv[2], name, sizeof name, &len) != napi_ok) return ret_int(env, -EINVAL);
  note *n = calloc(1, sizeof(note));
  if (!n) return ret_int(env, -ENOMEM);
  n->entry = 1;
  n->ino = (uint64_t)get_num(env, argv[1]);
  n->name = strdup(name);
  if (!n->name) {
    free(n);
    return ret_int(env, -ENOMEM);
  }
  return ret_int(env, enqueue(s, n));
}

static napi_value init(napi_env env, napi_value exports) {
  napi_property_descriptor props[] = {
    {"mount", NULL, js_mount, NULL, NULL, NULL, napi_default, NULL},
    {"unmount", NULL, js_unmount, NULL, NULL, NULL, napi_default, NULL},
    {"destroy", NULL, js_destroy, NULL, NULL, NULL, napi_default, NULL},
    {"replyErr", NULL, js_reply_err, NULL, NULL, NULL, napi_default, NULL},
    {"replyEntry", NULL, js_reply_entry, NULL, NULL, NULL, napi_default, NULL},
    {"replyAttr", NULL, js_reply_attr, NULL, NULL, NULL, napi_default, NULL},
    {"replyOpen", NULL, js_reply_open, NULL, NULL, NULL, napi_default, NULL},
    {"replyCreate", NULL, js_reply_create, NULL, NULL, NULL, napi_default, NULL},
    {"replyBuf", NULL, js_reply_buf, NULL, NULL, NULL, napi_default, NULL},
    {"replyWrite", NULL, js_reply_write, NULL, NULL, NULL, napi_default, NULL},
    {"replyXattr", NULL, js_reply_xattr, NULL, NULL, NULL, napi_default, NULL},
    {"replyReadlink", NULL, js_reply_readlink, NULL, NULL, NULL, napi_default, NULL},
    {"replyStatfs", NULL, js_reply_statfs, NULL, NULL, NULL, napi_default, NULL},
    {"replyDir", NULL, js_reply_dir, NULL, NULL, NULL, napi_default, NULL},
    {"notifyInvalInode", NULL, js_inval_inode, NULL, NULL, NULL, napi_default, NULL},
    {"notifyInvalEntry", NULL, js_inval_entry, NULL, NULL, NULL, napi_default, NULL},
  };
  napi_define_properties(env, exports, sizeof props / sizeof props[0], props);
  return exports;
}

NAPI_MODULE(NODE_GYP_MODULE_NAME, init)
