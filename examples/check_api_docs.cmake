# Checks that docs/api.md mentions every public name of every installed
# header (include/*.h, include/fq/*.h): each fq_* function (called, as
# `fq_name(`), type and each FQ_* macro and error code (as a whole word:
# `fq_job` is not mentioned by `fq_job_new`), and each field of the public
# structs (as `name`). Keeps the reference from falling behind the headers.
#   cmake -DSOURCE_DIR=repo -P check_api_docs.cmake
set(header "")
file(GLOB fq_parts "${SOURCE_DIR}/include/*.h" "${SOURCE_DIR}/include/fq/*.h")
foreach(part ${fq_parts})
  file(READ "${part}" text)
  string(APPEND header "${text}")
endforeach()
file(READ "${SOURCE_DIR}/docs/api.md" doc)

# Drop comments, so that words in them are not taken for names.
string(REGEX REPLACE "/\\*([^*]|\\*+[^*/])*\\*+/" "" code "${header}")

string(REGEX MATCHALL "fq_[a-z0-9_]+" names "${code}")
string(REGEX MATCHALL "FQ_[A-Z0-9][A-Z0-9_]*" macros "${code}")
list(APPEND names ${macros})
# Functions (and function-like macros): documented as calls, `fq_name(`.
string(REGEX MATCHALL "[Ff][Qq]_[A-Za-z0-9_]+[ ]*\\(" calls "${code}")
set(funcs "")
foreach(c ${calls})
  string(REGEX REPLACE "[ ]*\\($" "" c "${c}")
  if(NOT c MATCHES "^(fq|FQ)__")
    list(APPEND funcs "${c}")
  endif()
endforeach()
list(REMOVE_DUPLICATES funcs)
string(REGEX MATCHALL "XX\\(E[A-Z]+," codes "${code}")
foreach(c ${codes})
  string(REGEX REPLACE "XX\\((E[A-Z]+)," "FQ_\\1" c "${c}")
  list(APPEND names ${c})
endforeach()

# Struct fields: "type name;" lines inside typedef struct bodies. The
# semicolons become @ first, since CMake lists are separated by semicolons.
string(REPLACE ";" "@" flat "${code}")
string(REGEX MATCHALL "typedef struct fq_[a-z_]+ {[^}]*}" bodies "${flat}")
foreach(body ${bodies})
  string(REGEX MATCHALL "[A-Za-z_0-9]+@" fields "${body}")
  foreach(f ${fields})
    string(REPLACE "@" "" f "${f}")
    list(APPEND names "`${f}`")
  endforeach()
  # Function-pointer members: (*name)(
  string(REGEX MATCHALL "\\(\\*[a-z_]+\\)" fptrs "${body}")
  foreach(f ${fptrs})
    string(REGEX REPLACE "\\(\\*([a-z_]+)\\)" "`\\1`" f "${f}")
    list(APPEND names "${f}")
  endforeach()
endforeach()

# Internal helpers of the header itself, not part of the API.
list(REMOVE_ITEM names FQ__XX fq__ FQ_)
list(REMOVE_DUPLICATES names)
list(LENGTH names count)
if(count LESS 60)
  message(FATAL_ERROR "found only ${count} public names: is the parsing broken?")
endif()

# Internal names (fq__*) are not part of the API.
list(FILTER names EXCLUDE REGEX "^(fq|FQ)__")

set(missing "")
foreach(n ${names})
  if(n MATCHES "^`")
    string(FIND "${doc}" "${n}" pos)
  else()
    string(REGEX MATCH "(^|[^A-Za-z0-9_])${n}([^A-Za-z0-9_]|$)" hit "${doc}")
    set(pos 0)
    if(NOT hit)
      set(pos -1)
    endif()
  endif()
  if(pos EQUAL -1)
    list(APPEND missing "${n}")
  endif()
endforeach()
foreach(f ${funcs})
  string(FIND "${doc}" "${f}(" pos)
  if(pos EQUAL -1)
    list(APPEND missing "${f}()")
  endif()
endforeach()
if(missing)
  string(REPLACE ";" " " missing "${missing}")
  message(FATAL_ERROR "docs/api.md does not mention: ${missing}")
endif()
list(LENGTH funcs nfuncs)
message(STATUS "docs/api.md mentions all ${count} public names "
               "(${nfuncs} functions as calls)")
