"""dicomio"""
