/*
 * threadctl attach agent: a tiny shared library that `threadctl attach` and
 * the one-shot `--attach` mode load into a running CPython process (by ptrace,
 * through pyinjector) to run one job there.
 *
 * Why a library and not code run on the hijacked thread: the injector borrows
 * one thread of the target (its main thread) to call dlopen(). That thread may
 * be inside a C call that holds the GIL, inside malloc or inside some lock, so
 * running Python there could deadlock or corrupt the process. The constructor
 * below therefore does as little as possible on the borrowed thread: it starts
 * one detached pthread (all signals blocked) and returns. That new thread
 * takes the GIL with PyGILState_Ensure() like any other thread, runs the
 * bootstrap, releases the GIL and ends.
 *
 * No Python symbol is linked: each is looked up with dlsym() at run time.
 * Loading a library with unresolved Python symbols into a process that is not
 * CPython kills it ("symbol lookup error"); this one reports "no Python API"
 * instead and does nothing.
 *
 * The job directory is the directory this library was loaded from (the
 * injector copies it into a fresh private directory per job, which is also
 * why the constructor runs each time: dlopen() of a new file). The bootstrap
 * claims the job by renaming job.py to job.claimed, so a caller that gave up
 * (deadline) and removed job.py first makes the agent do nothing.
 *
 * The job gets the landing check of server/_core/native/landing.c (linked
 * into this same library) as a builtin function, AGENT_LAND, so a forced stop
 * inside the target needs no ctypes (which would stay loaded there).
 *
 * Unloading: the library cannot unload itself (dlclose would return into
 * unmapped code), so once its thread has ended the client has the injector
 * call dlclose() in the target (client/attach/_inject.py), and nothing of it
 * stays mapped. The builtin's method definition is allocated on the heap, so
 * a stray reference to the function object stays harmless after that; the
 * job drops its references before the thread ends. Errors before Python runs
 * are written as result.json for the caller.
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <link.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define AGENT_FILE "threadctl-agent.so"
#define PY_FILE_INPUT 257 /* Py_file_input, the same in every CPython 3 */
#define MAX_DIR 1024

typedef int (*int_void_fn)(void);
typedef void (*void_int_fn)(int);
typedef void (*void_void_fn)(void);
typedef void *(*ptr_void_fn)(void);
typedef void (*void_ptr_fn)(void *);
typedef void *(*run_string_fn)(const char *, int, void *, void *, void *);
typedef int (*parse_tuple_fn)(void *, const char *, ...);
typedef void *(*long_from_long_fn)(long);
typedef void *(*cfunction_new_fn)(void *, void *, void *);
typedef int (*dict_set_fn)(void *, const char *, void *);

/* From landing.c, linked into this library. */
int threadctl_landing_available(void);
int threadctl_land(unsigned long ident, void *exc, void *task, int descendants_ok,
                   void *protected_files, void *safe_lines);

/* PyMethodDef, whose layout every CPython 3 shares. */
struct method_def {
    const char *name;
    void *(*method)(void *, void *);
    int flags;
    const char *doc;
};
#define METH_VARARGS 0x0001

static parse_tuple_fn parse_tuple;
static long_from_long_fn long_from_long;
static void *python_symbol(void *libpython, const char *name);

/* Claims the job and runs it in a fresh namespace (nothing is bound in the
 * target's __main__). The job writes result.json itself. */
static const char BOOTSTRAP[] =
    "import os\n"
    "job_dir = '%s'\n"
    "try:\n"
    "    os.rename(job_dir + '/job.py', job_dir + '/job.claimed')\n"
    "except OSError:\n"
    "    pass\n"
    "else:\n"
    "    with open(job_dir + '/job.claimed', 'rb') as job_file:\n"
    "        job_source = job_file.read()\n"
    "    job_globals = {'__name__': '__threadctl_job__', 'JOB_DIR': job_dir,\n"
    "                   'AGENT_LAND': globals().get('AGENT_LAND')}\n"
    "    try:\n"
    "        exec(compile(job_source, job_dir + '/job.claimed', 'exec'), job_globals)\n"
    "    finally:\n"
    "        job_globals.clear()\n";

/* AGENT_LAND(ident, exception, task frames, descendants_ok, protected_files, safe_lines) */
static void *land_builtin(void *self, void *args)
{
    unsigned long ident;
    void *exc, *task, *files, *safe;
    int descendants_ok, result;

    (void)self;
    if (!parse_tuple(args, "kOOiOO", &ident, &exc, &task, &descendants_ok, &files, &safe)) {
        return NULL;
    }
    result = threadctl_land(ident, exc, task, descendants_ok, files, safe);
    return result == -2 ? NULL : long_from_long(result);
}

/* The AGENT_LAND function object, or NULL if this Python lacks what it needs. */
static void *make_land_builtin(void *libpython)
{
    cfunction_new_fn cfunction_new =
        (cfunction_new_fn)python_symbol(libpython, "PyCFunction_NewEx");
    struct method_def *def;

    parse_tuple = (parse_tuple_fn)python_symbol(libpython, "PyArg_ParseTuple");
    long_from_long = (long_from_long_fn)python_symbol(libpython, "PyLong_FromLong");
    if (!cfunction_new || !parse_tuple || !long_from_long || !threadctl_landing_available()) {
        return NULL;
    }
    def = calloc(1, sizeof *def); /* never freed: see the header (a few bytes per job) */
    if (!def) {
        return NULL;
    }
    def->name = "AGENT_LAND";
    def->method = land_builtin;
    def->flags = METH_VARARGS;
    return cfunction_new(def, NULL, NULL);
}

static void write_error(const char *dir, const char *message)
{
    char tmp[MAX_DIR + 32], final[MAX_DIR + 32], body[512];
    int fd, len;

    snprintf(tmp, sizeof tmp, "%s/result.tmp", dir);
    snprintf(final, sizeof final, "%s/result.json", dir);
    fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
    if (fd < 0) {
        return;
    }
    len = snprintf(body, sizeof body, "{\"ok\": false, \"kind\": \"agent\", \"error\": \"%s\"}",
                   message);
    if (len > 0 && write(fd, body, (size_t)len) == len) {
        close(fd);
        rename(tmp, final);
    } else {
        close(fd);
        unlink(tmp);
    }
}

static int find_libpython(struct dl_phdr_info *info, size_t size, void *data)
{
    (void)size;
    if (info->dlpi_name && strstr(info->dlpi_name, "/libpython3")) {
        *(void **)data = dlopen(info->dlpi_name, RTLD_LAZY | RTLD_NOLOAD);
        return *(void **)data != NULL;
    }
    return 0;
}

/* Python's C API: global symbols when the interpreter is the executable or a
 * libpython loaded globally; else look for a loaded libpython3.X.so. */
static void *python_symbol(void *libpython, const char *name)
{
    void *found = dlsym(RTLD_DEFAULT, name);
    return found || !libpython ? found : dlsym(libpython, name);
}

static void *agent_main(void *arg)
{
    char *dir = arg;
    void *libpython = NULL;
    char *code;
    size_t size;

    if (!dlsym(RTLD_DEFAULT, "PyGILState_Ensure")) {
        dl_iterate_phdr(find_libpython, &libpython);
    }
    int_void_fn is_initialized = (int_void_fn)python_symbol(libpython, "Py_IsInitialized");
    int_void_fn is_finalizing = (int_void_fn)python_symbol(libpython, "Py_IsFinalizing");
    int_void_fn gil_ensure = (int_void_fn)python_symbol(libpython, "PyGILState_Ensure");
    void_int_fn gil_release = (void_int_fn)python_symbol(libpython, "PyGILState_Release");
    ptr_void_fn dict_new = (ptr_void_fn)python_symbol(libpython, "PyDict_New");
    run_string_fn run_string = (run_string_fn)python_symbol(libpython, "PyRun_StringFlags");
    void_ptr_fn decref = (void_ptr_fn)python_symbol(libpython, "Py_DecRef");
    void_void_fn err_clear = (void_void_fn)python_symbol(libpython, "PyErr_Clear");

    if (!is_finalizing) {
        is_finalizing = (int_void_fn)python_symbol(libpython, "_Py_IsFinalizing");
    }
    if (!is_initialized || !gil_ensure || !gil_release || !dict_new || !run_string || !decref
        || !err_clear) {
        write_error(dir, "no CPython API in this process");
        goto out;
    }
    if (!is_initialized() || (is_finalizing && is_finalizing())) {
        write_error(dir, "the Python interpreter is not running (starting up or shutting down)");
        goto out;
    }
    size = sizeof BOOTSTRAP + strlen(dir);
    code = malloc(size);
    if (!code) {
        write_error(dir, "out of memory");
        goto out;
    }
    snprintf(code, size, BOOTSTRAP, dir);

    int gil = gil_ensure();
    void *globals = dict_new();
    dict_set_fn dict_set = (dict_set_fn)python_symbol(libpython, "PyDict_SetItemString");
    if (globals) {
        void *land = dict_set ? make_land_builtin(libpython) : NULL;
        if (land) {
            if (dict_set(globals, "AGENT_LAND", land) != 0) {
                err_clear();
            }
            decref(land);
        } else {
            err_clear(); /* no AGENT_LAND: the job falls back to ctypes */
        }
        void *result = run_string(code, PY_FILE_INPUT, globals, globals, NULL);
        if (result) {
            decref(result);
        } else {
            err_clear();
            write_error(dir, "the bootstrap raised an exception inside the process");
        }
        decref(globals);
    } else {
        err_clear();
    }
    gil_release(gil);
    free(code);
out:
    free(dir);
    return NULL;
}

/* Only a directory path of plain characters is accepted: it is pasted into
 * Python source as a string literal. */
static int plain_path(const char *path)
{
    for (const char *c = path; *c; c++) {
        if (!(('a' <= *c && *c <= 'z') || ('A' <= *c && *c <= 'Z') || ('0' <= *c && *c <= '9')
              || *c == '/' || *c == '_' || *c == '-' || *c == '.')) {
            return 0;
        }
    }
    return 1;
}

__attribute__((constructor)) static void agent_load(void)
{
    Dl_info self;
    char *dir, *slash;
    pthread_t thread;
    pthread_attr_t attr;
    sigset_t all, old;

    /* Act only when loaded as a job's agent: a copy named AGENT_FILE in a job
     * directory. Loaded any other way (an import by mistake), do nothing. */
    if (!dladdr((void *)agent_load, &self) || !self.dli_fname) {
        return;
    }
    slash = strrchr(self.dli_fname, '/');
    if (!slash || strcmp(slash + 1, AGENT_FILE) != 0 || slash - self.dli_fname >= MAX_DIR) {
        return;
    }
    dir = strndup(self.dli_fname, (size_t)(slash - self.dli_fname));
    if (!dir) {
        return;
    }
    if (!plain_path(dir)) {
        write_error(dir, "job directory path has unexpected characters");
        free(dir);
        return;
    }
    /* The new thread inherits this mask: keep every signal away from it. */
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old);
    pthread_attr_init(&attr);
    pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
    if (pthread_create(&thread, &attr, agent_main, dir) == 0) {
        pthread_setname_np(thread, "threadctl-agent");
    } else {
        write_error(dir, "could not start the agent thread");
        free(dir);
    }
    pthread_attr_destroy(&attr);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
}
