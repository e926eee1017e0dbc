#include "version.h"
int main(int c, char **v) { if (c == 2 && version_arg(v[1])) version_print("mxguard-stats"); return 0; }
