# Read by CMake at each project() of llama-cpp-python's build (CMAKE_PROJECT_INCLUDE_BEFORE, set by
# compat/rungs/install.py). The binding loads libllama and ggml only (llama_cpp/llama_cpp.py), yet
# its CMakeLists forces llama.cpp's common library on: about 50 of the 130 objects of the compile
# (argument parsing, chat parsers, an HTTP client), built and never loaded. Off at llama.cpp's own
# project(), after the force; its install rule goes with it.
set(LLAMA_BUILD_COMMON OFF CACHE BOOL "infermatrix: the binding loads libllama and ggml only" FORCE)
