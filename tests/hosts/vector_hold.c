/*
 * For tests/hosts/vector_loop.py: C code that keeps values in vector
 * registers across a long stretch with no call, as compiled code does (struct
 * copies, numeric loops), and checks them. An injector that borrows this
 * thread and gives it back with other values in them is caught here.
 *
 * hold_vectors(rounds) returns 1 as soon as a value changed, else 0. With
 * AVX it also holds the upper half of ymm1, which glibc's AVX routines clear
 * (vzeroupper). x86_64 only.
 */

/* rax: the pattern; rcx: the checks left. */
#define PATTERN "mov $0x1122334455667788, %%rax\n\tmov $100000, %%rcx\n"
/* The loop's end (label 1: its start); %0 = 1 if a check jumped to 2:. */
#define LOOP_END \
    "dec %%rcx\n\tjnz 1b\n\txor %%eax, %%eax\n\tjmp 3f\n2:\n\tmov $1, %%eax\n3:\n\tmov %%rax, %0\n\t"

static int hold_sse(void)
{
    long changed;
    __asm__ volatile(
        PATTERN
        "movq %%rax, %%xmm0\n\t"
        "movq %%rax, %%xmm7\n"
        "1:\n\t"
        "movq %%xmm0, %%rdx\n\t"
        "cmp %%rax, %%rdx\n\t"
        "jne 2f\n\t"
        "movq %%xmm7, %%rdx\n\t"
        "cmp %%rax, %%rdx\n\t"
        "jne 2f\n\t"
        LOOP_END
        : "=r"(changed)
        :
        : "rax", "rcx", "rdx", "xmm0", "xmm7", "cc");
    return (int)changed;
}

static int hold_avx(void)
{
    long changed;
    __asm__ volatile(
        PATTERN
        "vmovq %%rax, %%xmm1\n\t"
        "vinsertf128 $1, %%xmm1, %%ymm1, %%ymm1\n"
        "1:\n\t"
        "vextractf128 $1, %%ymm1, %%xmm2\n\t"
        "vmovq %%xmm2, %%rdx\n\t"
        "cmp %%rax, %%rdx\n\t"
        "jne 2f\n\t"
        "vmovq %%xmm1, %%rdx\n\t"
        "cmp %%rax, %%rdx\n\t"
        "jne 2f\n\t"
        LOOP_END
        "vzeroupper\n\t"
        : "=r"(changed)
        :
        : "rax", "rcx", "rdx", "xmm1", "xmm2", "cc");
    return (int)changed;
}

int hold_vectors(long rounds)
{
    int avx = __builtin_cpu_supports("avx");
    for (long i = 0; i < rounds; i++) {
        if (hold_sse() || (avx && hold_avx())) {
            return 1;
        }
    }
    return 0;
}
