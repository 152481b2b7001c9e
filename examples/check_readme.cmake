# Checks that README.md shows the demo as it is: the first ```c block must be
# examples/squares.c verbatim and the block right after it must be
# examples/expected/squares.txt. The squares test checks that this output is
# what the program prints, so the README's quick start is compiled and run.
#   cmake -DSOURCE_DIR=repo -P check_readme.cmake
file(READ "${SOURCE_DIR}/README.md" readme)
file(READ "${SOURCE_DIR}/examples/squares.c" program)
file(READ "${SOURCE_DIR}/examples/expected/squares.txt" output)

# Returns in out_var the body of the first fenced block opening with `fence`
# at or after position `from`, and in end_var the position after it.
function(fenced_block text fence from out_var end_var)
  string(SUBSTRING "${text}" ${from} -1 rest)
  string(FIND "${rest}" "${fence}\n" start)
  if(start EQUAL -1)
    message(FATAL_ERROR "README.md: no block opening with ${fence}")
  endif()
  string(LENGTH "${fence}\n" flen)
  math(EXPR start "${start} + ${flen}")
  string(SUBSTRING "${rest}" ${start} -1 rest)
  string(FIND "${rest}" "```\n" stop)
  if(stop EQUAL -1)
    message(FATAL_ERROR "README.md: unterminated ${fence} block")
  endif()
  string(SUBSTRING "${rest}" 0 ${stop} body)
  math(EXPR after "${from} + ${start} + ${stop} + 4")
  set(${out_var} "${body}" PARENT_SCOPE)
  set(${end_var} ${after} PARENT_SCOPE)
endfunction()

fenced_block("${readme}" "```c" 0 code after_code)
fenced_block("${readme}" "```text" ${after_code} text after_text)
if(NOT code STREQUAL program)
  message(FATAL_ERROR "README.md: the first ```c block is not "
                      "examples/squares.c; copy the file into it")
endif()
if(NOT text STREQUAL output)
  message(FATAL_ERROR "README.md: the ```text block after the code is not "
                      "examples/expected/squares.txt")
endif()
