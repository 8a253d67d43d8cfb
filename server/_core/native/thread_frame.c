/*
 * One thread's innermost Python frame, without building every thread's.
 *
 * Why: sys._current_frames() makes a frame object and a dict entry for every
 * thread of the process, so describing or stopping one thread cost O(threads)
 * (6 ms at 10,000 threads on a 2-core machine, nearly all of a GetThread).
 * This walks the interpreter's thread states (public C API:
 * PyInterpreterState_ThreadHead, PyThreadState_Next) comparing each one's
 * thread ident, and asks only the match for its frame
 * (PyThreadState_GetFrame).
 *
 * The ident is the thread state's `thread_id` field, which no public function
 * returns and whose offset differs between CPython versions. It is found at
 * run time, in the calling thread's own state (the word equal to
 * PyThread_get_thread_ident()), and trusted only if, for every thread state,
 * the frame this finds through that offset is the very frame object
 * _PyThread_CurrentFrames (sys._current_frames()) reports for it: all in one
 * call that runs no bytecode and releases nothing, so no thread moves in
 * between. If anything disagrees the caller keeps sys._current_frames().
 *
 * Hazard: the walk takes no lock (the runtime's lock of the thread list is
 * not reachable through the C API). Holding the GIL, no thread state can be
 * deleted meanwhile (threads delete their own holding the GIL); a thread
 * state can be added at the head by a thread that does not hold the GIL (a
 * C thread entering Python). A new thread state has no frame until its
 * thread runs (so the creator's ident it holds meanwhile on 3.10 and 3.11
 * finds nothing: the walk goes on to the creator's own), and CPython 3.11
 * makes it the head before it links the rest of the list to it: a walk
 * that meets it then sees an early end of the list (tests/hosts/
 * frame_lookup.py sees that about once in 100,000 lookups beside C threads
 * entering Python all the time). The thread is not found, and the caller
 * looks with sys._current_frames(). Only the current interpreter is walked
 * (threads of subinterpreters are not found: the same fallback).
 *
 * No Python symbol is linked (dlsym, as in landing.c): one build serves 3.10
 * to 3.13. Call everything with the GIL held (ctypes.PyDLL).
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <stddef.h>

typedef struct _object PyObject;
typedef struct _ts PyThreadState;
typedef struct _is PyInterpreterState;

static PyThreadState *(*thread_state_get)(void);
static unsigned long (*thread_ident)(void);
static PyInterpreterState *(*interpreter_get)(void);
static PyThreadState *(*thread_head)(PyInterpreterState *);
static PyThreadState *(*thread_next)(PyThreadState *);
static PyObject *(*thread_frame)(PyThreadState *);
static PyObject *(*frames_of_all)(void);
static PyObject *(*long_from_unsigned_long)(unsigned long);
static PyObject *(*dict_get_item)(PyObject *, PyObject *);
static long (*dict_size)(PyObject *);
static void (*inc_ref)(PyObject *);
static void (*dec_ref)(PyObject *);
static PyObject *none;
/* What threadctl_thread_ident_offset() found, for the lookups below; -1
 * until then. */
static long known_offset = -1;

/* Where the search for the ident stops: it lies at 136 to 176 bytes on
 * CPython 3.10 to 3.13, whose thread states are all larger than 256 bytes,
 * so the search never reads past the caller's own. */
#define MAX_OFFSET_WORDS 32

#define LOOKUP(var, name) (var = (__typeof__(var))dlsym(RTLD_DEFAULT, name)) != NULL

static unsigned long ident_at(PyThreadState *state, long offset)
{
    return *(unsigned long *)((char *)state + offset);
}

/* How many threads agree: through `offset`, every thread state's frame is
 * the one `frames` (sys._current_frames()) has for its ident, and none is
 * missed; 0 if any does not. */
static long agrees(long offset, PyObject *frames)
{
    long with_frames = 0;
    int agreed = 1;
    PyThreadState *state;

    for (state = thread_head(interpreter_get()); state != NULL && agreed;
         state = thread_next(state)) {
        PyObject *frame = thread_frame(state);
        PyObject *key;
        if (frame == NULL) {
            continue;
        }
        with_frames++;
        key = long_from_unsigned_long(ident_at(state, offset));
        agreed = key != NULL && dict_get_item(frames, key) == frame;
        if (key != NULL) {
            dec_ref(key);
        }
        dec_ref(frame);
    }
    return agreed && with_frames == dict_size(frames) ? with_frames : 0;
}

/*
 * The offset of `thread_id` in a thread state, in bytes, checked against
 * sys._current_frames() for every thread (see above); -1 if no offset
 * agrees (or the C API is missing); -2 if one agrees but fewer than two
 * threads run Python code, too few to tell (ask again later). The cyclic
 * GC must be paused by the caller (a collection could run Python code
 * between the two views).
 */
__attribute__((visibility("default"))) long threadctl_thread_ident_offset(void)
{
    PyThreadState *me;
    unsigned long my_ident;
    PyObject *frames;
    long words, found = -1;

    if (!(LOOKUP(thread_state_get, "PyThreadState_Get") &&
          LOOKUP(thread_ident, "PyThread_get_thread_ident") &&
          LOOKUP(interpreter_get, "PyInterpreterState_Get") &&
          LOOKUP(thread_head, "PyInterpreterState_ThreadHead") &&
          LOOKUP(thread_next, "PyThreadState_Next") &&
          LOOKUP(thread_frame, "PyThreadState_GetFrame") &&
          LOOKUP(frames_of_all, "_PyThread_CurrentFrames") &&
          LOOKUP(long_from_unsigned_long, "PyLong_FromUnsignedLong") &&
          LOOKUP(dict_get_item, "PyDict_GetItem") && LOOKUP(dict_size, "PyDict_Size") &&
          LOOKUP(inc_ref, "Py_IncRef") && LOOKUP(dec_ref, "Py_DecRef") &&
          LOOKUP(none, "_Py_NoneStruct"))) {
        return -1;
    }
    me = thread_state_get();
    my_ident = thread_ident();
    frames = frames_of_all();
    if (frames == NULL) {
        return -1; /* a Python exception is set: the caller's ctypes call raises it */
    }
    for (words = 0; words < MAX_OFFSET_WORDS && found < 0; words++) {
        long offset = words * (long)sizeof(unsigned long);
        long agreeing = ident_at(me, offset) == my_ident ? agrees(offset, frames) : 0;
        if (agreeing > 0) {
            found = agreeing >= 2 ? offset : -2;
        }
    }
    dec_ref(frames);
    if (found >= 0) {
        known_offset = found;
    }
    return found;
}

/*
 * The innermost frame of thread `ident` (a new reference), or NULL: no
 * offset found yet in this process (threadctl_thread_ident_offset), or no
 * thread state of this interpreter has that ident and a frame. For
 * landing.c, in the same library; Python calls threadctl_thread_frame.
 */
PyObject *threadctl_thread_frame_if_known(unsigned long ident)
{
    PyThreadState *state;

    if (known_offset < 0) {
        return NULL;
    }
    for (state = thread_head(interpreter_get()); state != NULL; state = thread_next(state)) {
        if (ident_at(state, known_offset) == ident) {
            PyObject *frame = thread_frame(state);
            if (frame != NULL) {
                return frame;
            }
        }
    }
    return NULL;
}

/* The same, with None for NULL (for ctypes' py_object). */
__attribute__((visibility("default"))) PyObject *threadctl_thread_frame(unsigned long ident)
{
    PyObject *frame = threadctl_thread_frame_if_known(ident);

    if (frame == NULL) {
        inc_ref(none);
        return none;
    }
    return frame;
}
