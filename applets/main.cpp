// The process entry point; everything else is in applets/multicall.cpp.
#include "applets/applets.hpp"

int main(int argc, char** argv) {
  return multicall_main(argc, argv);
}
