# Runs the first ```python block of README.md with PYTHON and checks that it
# exits with status 0 and prints exactly the contents of EXPECTED.
#   cmake -DSOURCE_DIR=repo -DPYTHON=python3 -DWORK_DIR=dir
#         -DEXPECTED=file -P run_readme_python.cmake
# PYTHONPATH must let it import forkqueue (the test sets it).
file(READ "${SOURCE_DIR}/README.md" readme)
string(FIND "${readme}" "```python\n" start)
if(start EQUAL -1)
  message(FATAL_ERROR "README.md has no ```python block")
endif()
math(EXPR start "${start} + 10")
string(SUBSTRING "${readme}" ${start} -1 rest)
string(FIND "${rest}" "```\n" stop)
if(stop EQUAL -1)
  message(FATAL_ERROR "README.md: unterminated ```python block")
endif()
string(SUBSTRING "${rest}" 0 ${stop} code)

file(WRITE "${WORK_DIR}/readme_quickstart.py" "${code}")
execute_process(COMMAND "${PYTHON}" "${WORK_DIR}/readme_quickstart.py"
                RESULT_VARIABLE status
                OUTPUT_VARIABLE actual
                ERROR_VARIABLE errors)
file(READ "${EXPECTED}" expected)
if(NOT status STREQUAL "0" OR NOT errors STREQUAL "" OR
   NOT actual STREQUAL expected)
  message(FATAL_ERROR "README.md python quick start: status '${status}'\n"
                      "--- stderr ---\n${errors}"
                      "--- expected ---\n${expected}"
                      "--- actual ---\n${actual}--- end ---")
endif()
