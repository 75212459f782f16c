/* hello: the example program of debops-ci. */
#include <stdio.h>

int main(int argc, char **argv)
{
    const char *who = argc > 1 ? argv[1] : "world";
    printf("Hello, %s! (built by debops-ci)\n", who);
    return 0;
}
