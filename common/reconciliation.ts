// The daily reconciliation report: written by the batch layer, served by the operators' API. It
// compares the layers both ways: ads the batch layer has and the speed layer lacks, ads only the
// speed layer has, ads both have with different counts, and hours whose totals disagree.
export interface AdDifference {
  adId: string;
  batch: number;
  speed: number;
  /** speed − batch */
  difference: number;
}

export interface HourDifference {
  /** ISO hour start. */
  hour: string;
  batch: number;
  speed: number;
  /** speed − batch */
  difference: number;
}

export interface ReconciliationReport {
  date: string;
  /** Ads with clicks in either layer. */
  adsCompared: number;
  batchTotal: number;
  speedTotal: number;
  /** All ads whose layers disagree: the three lists below together (before `limit`). */
  differingAds: number;
  /** Ads in both layers with different counts, largest absolute difference first (at most `limit`). */
  differences: AdDifference[];
  /** Ads with batch clicks and none in the speed layer (at most `limit`). */
  onlyInBatch: AdDifference[];
  /** Ads with speed-layer clicks and none in the batch layer (at most `limit`). */
  onlyInSpeed: AdDifference[];
  /** Hours of the day whose totals disagree, in time order. */
  hours: HourDifference[];
  finalizedHours: number;
}
