// Block-scaled formats with a learned level table. To be written.
#pragma once
