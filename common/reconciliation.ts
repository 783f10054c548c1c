// The daily reconciliation report: written by the batch layer, served by the operators' API.
export interface AdDifference {
  adId: string;
  batch: number;
  speed: number;
  /** speed − batch */
  difference: number;
}

export interface ReconciliationReport {
  date: string;
  adsCompared: number;
  batchTotal: number;
  speedTotal: number;
  differingAds: number;
  /** The differing ads, largest absolute difference first (at most `limit`). */
  differences: AdDifference[];
  finalizedHours: number;
}
