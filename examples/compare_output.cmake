# Runs PROGRAM and fails unless it exits with status 0, writes nothing to
# stderr and writes exactly the contents of EXPECTED to stdout.
#   cmake -DPROGRAM=path -DEXPECTED=file -P compare_output.cmake
foreach(var PROGRAM EXPECTED)
  if(NOT DEFINED ${var})
    message(FATAL_ERROR "compare_output.cmake: ${var} is not set")
  endif()
endforeach()

execute_process(COMMAND "${PROGRAM}"
                RESULT_VARIABLE status
                OUTPUT_VARIABLE actual
                ERROR_VARIABLE errors)
file(READ "${EXPECTED}" expected)

set(failed FALSE)
if(NOT status STREQUAL "0")
  message(SEND_ERROR "${PROGRAM} ended with status '${status}'")
  set(failed TRUE)
endif()
if(NOT errors STREQUAL "")
  message(SEND_ERROR "${PROGRAM} wrote to stderr:\n${errors}")
  set(failed TRUE)
endif()
if(NOT actual STREQUAL expected)
  message(SEND_ERROR "${PROGRAM}: stdout differs from ${EXPECTED}\n"
                     "--- expected ---\n${expected}"
                     "--- actual ---\n${actual}--- end ---")
  set(failed TRUE)
endif()
if(failed)
  message(FATAL_ERROR "output check failed")
endif()
