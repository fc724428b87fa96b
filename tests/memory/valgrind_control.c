/* The valgrind test's positive control: a definite leak and a jump on an uninitialised
 * value, which the test's valgrind options and log check must both report. Not part of
 * kd3: it exists to fail. */
#include <stdio.h>
#include <stdlib.h>

static int *volatile sink; /* volatile: the compiler keeps the allocation */

int main(int argc, char **argv)
{
	(void)argv;
	sink = malloc(64 * sizeof(int));
	if (!sink)
		return 1;
	if (sink[argc]) /* never written: uninitialised */
		puts("nonzero");
	sink = NULL; /* the only pointer to it gone: definitely lost */
	return 0;
}
