#include "entropy.h"
