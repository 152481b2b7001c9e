# Checks that docs/api.md mentions every public name of forkqueue.h and the
# headers it includes (include/fq/*.h): each
# fq_* function and type, each FQ_* macro and error code, and each field of
# the public structs (as `name`). Keeps the reference from falling behind the
# header.
#   cmake -DSOURCE_DIR=repo -P check_api_docs.cmake
file(READ "${SOURCE_DIR}/include/forkqueue.h" header)
file(GLOB fq_parts "${SOURCE_DIR}/include/fq/*.h")
foreach(part ${fq_parts})
  file(READ "${part}" text)
  string(APPEND header "${text}")
endforeach()
file(READ "${SOURCE_DIR}/docs/api.md" doc)

# Drop comments, so that words in them are not taken for names.
string(REGEX REPLACE "/\\*([^*]|\\*+[^*/])*\\*+/" "" code "${header}")

string(REGEX MATCHALL "fq_[a-z_]+" names "${code}")
string(REGEX MATCHALL "FQ_[A-Z][A-Z_]*" macros "${code}")
list(APPEND names ${macros})
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

set(missing "")
foreach(n ${names})
  string(FIND "${doc}" "${n}" pos)
  if(pos EQUAL -1)
    list(APPEND missing "${n}")
  endif()
endforeach()
if(missing)
  string(REPLACE ";" " " missing "${missing}")
  message(FATAL_ERROR "docs/api.md does not mention: ${missing}")
endif()
message(STATUS "docs/api.md mentions all ${count} public names")
