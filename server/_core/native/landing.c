/*
 * threadctl's landing check: raise a forced stop in another thread only if
 * that thread's innermost Python frame is a safe place for it, and decide
 * and inject in one step that no other Python thread can interleave with.
 *
 * Why native: PyThreadState_SetAsyncExc makes the target raise at its next
 * eval-breaker check, wherever it is then. A target paused while the caller
 * holds the GIL raises exactly where it was paused, so "look at its frame,
 * then inject" is safe only if the target cannot run in between. Python code
 * between the two may hand the GIL over at any call or loop (after a switch
 * interval, or whenever the OS deschedules the caller on a loaded machine);
 * this function runs no bytecode and releases nothing, so it cannot.
 *
 * The caller (server/_core/landing.py) passes what it observed when the stop
 * was requested: the task's frames (outside the protected code: the
 * standard library's lock wrappers, threadctl itself), and whether frames
 * they call may take the stop too. The stop lands only in those frames, or
 * in frames they called, so it never hits code the thread started after the
 * request (the next task of a pool worker).
 *
 * No Python symbol is linked: each is looked up with dlsym() in the running
 * interpreter, so one build serves every CPython version (as the attach
 * agent does). Everything used is public C API since 3.9/3.10 except
 * _PyThread_CurrentFrames, which sys._current_frames() is built on (3.10 to
 * 3.13 export it). The target's frame comes from thread_frame.c's lookup
 * once the host has found its offset (one thread's frame instead of every
 * thread's: a lander trying every 0.5 ms beside 10,000 threads would
 * otherwise hold the GIL most of the time), else from that function.
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <stddef.h>

typedef struct _object PyObject;

PyObject *threadctl_thread_frame_if_known(unsigned long ident); /* thread_frame.c */

static PyObject *(*current_frames)(void);
static PyObject *(*long_from_unsigned_long)(unsigned long);
static PyObject *(*dict_get_item)(PyObject *, PyObject *);
static PyObject *(*frame_get_back)(PyObject *);
static PyObject *(*frame_get_code)(PyObject *);
static PyObject *(*get_attr_string)(PyObject *, const char *);
static int (*set_contains)(PyObject *, PyObject *);
static int (*frame_get_line_number)(PyObject *);
static int (*set_async_exc)(unsigned long, PyObject *);
static int (*gc_disable)(void);
static int (*gc_enable)(void);
static void (*dec_ref)(PyObject *);

#define LOOKUP(var, name) (var = (__typeof__(var))dlsym(RTLD_DEFAULT, name)) != NULL

__attribute__((visibility("default"))) int threadctl_landing_available(void)
{
    return LOOKUP(current_frames, "_PyThread_CurrentFrames") &&
           LOOKUP(long_from_unsigned_long, "PyLong_FromUnsignedLong") &&
           LOOKUP(dict_get_item, "PyDict_GetItem") &&
           LOOKUP(frame_get_back, "PyFrame_GetBack") &&
           LOOKUP(frame_get_code, "PyFrame_GetCode") &&
           LOOKUP(get_attr_string, "PyObject_GetAttrString") &&
           LOOKUP(set_contains, "PySet_Contains") &&
           LOOKUP(frame_get_line_number, "PyFrame_GetLineNumber") &&
           LOOKUP(set_async_exc, "PyThreadState_SetAsyncExc") &&
           LOOKUP(gc_disable, "PyGC_Disable") && LOOKUP(gc_enable, "PyGC_Enable") &&
           LOOKUP(dec_ref, "Py_DecRef");
}

/* 1 if `frame` runs code from one of `protected_files`, or a function named
 * in it (`__del__`), 0 if not, -1 on error. */
static int is_protected(PyObject *frame, PyObject *protected_files)
{
    PyObject *code = frame_get_code(frame);
    PyObject *filename = get_attr_string(code, "co_filename");
    int found = filename == NULL ? -1 : set_contains(protected_files, filename);
    if (found == 0) {
        PyObject *name = get_attr_string(code, "co_name");
        found = name == NULL ? -1 : set_contains(protected_files, name);
        if (name != NULL) {
            dec_ref(name);
        }
    }
    if (filename != NULL) {
        dec_ref(filename);
    }
    dec_ref(code);
    return found;
}

/* 1 if `frame` is at one of `safe_lines` ({code: set of lines}): library code
 * written for an exception raised there, 0 if not, -1 on error. */
static int in_safe_region(PyObject *frame, PyObject *safe_lines)
{
    PyObject *code = frame_get_code(frame);
    PyObject *lines = dict_get_item(safe_lines, code); /* borrowed */
    int found = 0;
    if (lines != NULL) {
        PyObject *line = long_from_unsigned_long((unsigned long)frame_get_line_number(frame));
        found = line == NULL ? -1 : set_contains(lines, line);
        if (line != NULL) {
            dec_ref(line);
        }
    }
    dec_ref(code);
    return found;
}

/* Whether a stop raised in `top` now would land where it may (see
 * threadctl_land): 1 yes, 0 not now, 2 not now (code the anchor called after
 * the request), -1 on error. The anchor is the innermost frame still running
 * of `task` (a set of frames observed at the request, innermost first). */
static int landable(PyObject *top, PyObject *task, int descendants_ok, PyObject *protected_files,
                    PyObject *safe_lines)
{
    int any_protected = 0, all_safe = 1, result = 0, at_anchor = 0;
    PyObject *walked = top, *back;

    /* `walked` is borrowed while it is `top`, a new reference after. */
    while (walked != NULL) {
        int in_task = set_contains(task, walked);
        int protected_code, safe;
        if (in_task != 0) {
            at_anchor = in_task > 0;
            result = in_task < 0 ? -1 : 0;
            break;
        }
        protected_code = is_protected(walked, protected_files);
        safe = protected_code > 0 ? in_safe_region(walked, safe_lines) : 0;
        if (protected_code < 0 || safe < 0) {
            result = -1;
            break;
        }
        any_protected |= protected_code;
        all_safe &= !protected_code || safe;
        back = frame_get_back(walked);
        if (walked != top) {
            dec_ref(walked);
        }
        walked = back;
    }
    if (at_anchor) {
        if (walked == top) {
            result = 1;
        } else {
            result = !any_protected ? (descendants_ok ? 1 : 2) : all_safe;
        }
    }
    if (walked != NULL && walked != top) {
        dec_ref(walked);
    }
    return result;
}

/*
 * Queue `exc` (a class) in thread `ident` if its innermost frame is where a
 * stop may land: the anchor (the innermost frame of `task` still running); a
 * frame the anchor called through no protected code (only with
 * `descendants_ok`); or protected code called from the anchor in which every
 * frame is at one of `safe_lines` (a Queue.get and the Condition.wait under
 * it, blocked, where an exception unwinds cleanly).
 * Call with the GIL held (ctypes.PyDLL), after threadctl_landing_available()
 * returned 1.
 *
 * Returns 1 if queued, 0 if not now (try again later), 2 if not now because
 * the thread runs code the anchor called after the request (where a stop
 * requested while it waited must not land), -1 if the thread runs no Python
 * code (exited, or not started), -2 with a Python exception set.
 * The cyclic GC is paused meanwhile: a collection could run finalizers,
 * which are Python code.
 */
__attribute__((visibility("default"))) int threadctl_land(unsigned long ident, PyObject *exc,
                                                          PyObject *task, int descendants_ok,
                                                          PyObject *protected_files,
                                                          PyObject *safe_lines)
{
    int gc_was_enabled = gc_disable();
    int result = -2, landed;
    /* One thread's frame where thread_frame.c knows how (a new reference);
     * else, or if it misses the thread, from every thread's (borrowed). */
    PyObject *found = threadctl_thread_frame_if_known(ident);
    PyObject *frames = found != NULL ? NULL : current_frames();
    PyObject *key = found != NULL || frames == NULL ? NULL : long_from_unsigned_long(ident);
    PyObject *top = found != NULL ? found : key != NULL ? dict_get_item(frames, key) : NULL;

    if (found == NULL && key == NULL) {
        goto done;
    }
    if (top == NULL) {
        result = -1;
        goto done;
    }
    landed = landable(top, task, descendants_ok, protected_files, safe_lines);
    if (landed == 1) {
        result = set_async_exc(ident, exc) == 1 ? 1 : -1;
    } else {
        result = landed < 0 ? -2 : landed;
    }
done:
    if (found != NULL) {
        dec_ref(found);
    }
    if (key != NULL) {
        dec_ref(key);
    }
    if (frames != NULL) {
        dec_ref(frames);
    }
    if (gc_was_enabled) {
        gc_enable();
    }
    return result;
}
