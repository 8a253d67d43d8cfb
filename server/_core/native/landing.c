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
 * The caller (server/_landing.py) passes what it observed when the stop was
 * requested: `anchor`, the innermost frame outside the protected code (the
 * standard library's lock wrappers, threadctl itself), and whether frames
 * the anchor calls may take the stop too. The stop lands only in the anchor,
 * or in a frame it called that is not protected, so it never hits code the
 * thread started after the request (the next task of a pool worker).
 *
 * No Python symbol is linked: each is looked up with dlsym() in the running
 * interpreter, so one build serves every CPython version (as the attach
 * agent does). Everything used is public C API since 3.9/3.10 except
 * _PyThread_CurrentFrames, which sys._current_frames() is built on (3.10 to
 * 3.13 export it).
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <stddef.h>

typedef struct _object PyObject;

static PyObject *(*current_frames)(void);
static PyObject *(*long_from_unsigned_long)(unsigned long);
static PyObject *(*dict_get_item)(PyObject *, PyObject *);
static PyObject *(*frame_get_back)(PyObject *);
static PyObject *(*frame_get_code)(PyObject *);
static PyObject *(*get_attr_string)(PyObject *, const char *);
static int (*set_contains)(PyObject *, PyObject *);
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
           LOOKUP(set_async_exc, "PyThreadState_SetAsyncExc") &&
           LOOKUP(gc_disable, "PyGC_Disable") && LOOKUP(gc_enable, "PyGC_Enable") &&
           LOOKUP(dec_ref, "Py_DecRef");
}

/* 1 if `frame` runs code from one of `protected_files`, 0 if not, -1 on error. */
static int is_protected(PyObject *frame, PyObject *protected_files)
{
    PyObject *code = frame_get_code(frame);
    PyObject *filename = get_attr_string(code, "co_filename");
    int found = filename == NULL ? -1 : set_contains(protected_files, filename);
    if (filename != NULL) {
        dec_ref(filename);
    }
    dec_ref(code);
    return found;
}

/* 1 if `anchor` is `frame` or one of its callers, 0 if not. */
static int on_stack(PyObject *frame, PyObject *anchor)
{
    PyObject *walked = frame_get_back(frame);
    while (walked != NULL) {
        PyObject *back;
        if (walked == anchor) {
            dec_ref(walked);
            return 1;
        }
        back = frame_get_back(walked);
        dec_ref(walked);
        walked = back;
    }
    return 0;
}

/*
 * Queue `exc` (a class) in thread `ident` if its innermost frame is `anchor`,
 * or (with `descendants_ok`) a frame called from the anchor that does not run
 * protected code. Call with the GIL held (ctypes.PyDLL), after
 * threadctl_landing_available() returned 1.
 *
 * Returns 1 if queued, 0 if not now (try again later), 2 if not now because
 * the thread runs code the anchor called after the request (where a stop
 * requested while it waited must not land), -1 if the thread runs no Python
 * code (exited, or not started), -2 with a Python exception set.
 * The cyclic GC is paused meanwhile: a collection could run finalizers,
 * which are Python code.
 */
__attribute__((visibility("default"))) int threadctl_land(unsigned long ident, PyObject *exc,
                                                          PyObject *anchor, int descendants_ok,
                                                          PyObject *protected_files)
{
    int gc_was_enabled = gc_disable();
    int result = -2;
    PyObject *frames = current_frames();
    PyObject *key = frames == NULL ? NULL : long_from_unsigned_long(ident);
    PyObject *top;

    if (key == NULL) {
        goto done;
    }
    top = dict_get_item(frames, key); /* borrowed */
    if (top == NULL) {
        result = -1;
    } else if (top == anchor) {
        result = set_async_exc(ident, exc) == 1 ? 1 : -1;
    } else if (!descendants_ok) {
        /* 2: back in the thread's own code, but in frames it called after
         * the request (it was waiting in protected code then) */
        int protected_code = is_protected(top, protected_files);
        if (protected_code < 0) {
            goto done;
        }
        result = !protected_code && on_stack(top, anchor) ? 2 : 0;
    } else {
        int protected_code = is_protected(top, protected_files);
        if (protected_code < 0) {
            goto done;
        }
        result = !protected_code && on_stack(top, anchor) ? (set_async_exc(ident, exc) == 1 ? 1 : -1)
                                                          : 0;
    }
done:
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
