/*
 * For tests/hosts/never_safe.py: a main thread that is never at a safe point
 * for the injector. Built as "libc-spin.so": the injector takes code in a
 * file named like the C library for the C library, and the C library outside
 * a system call as a place where dlopen() could land inside malloc. So a
 * thread spinning here is "inside the C library" at every look.
 */
void spin_forever(void)
{
    for (volatile unsigned long turns = 0;; turns++) {
    }
}
