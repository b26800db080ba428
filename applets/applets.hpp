// The applet entry points. Each lives in its own file in applets/ and is listed once in the
// table in applets/main.cpp.
#pragma once

int agent_main(int argc, char** argv);
int api_main(int argc, char** argv);
int dispatcher_main(int argc, char** argv);
int exec_main(int argc, char** argv);
int pairing_main(int argc, char** argv);
