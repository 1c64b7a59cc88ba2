import Delivery
import Foundation

/// 2026-11-29 00:00:00 UTC.
let midnight: Int64 = 1_795_910_400
